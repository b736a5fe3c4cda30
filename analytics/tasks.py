"""Thin Celery wrappers over analytics services."""

from __future__ import annotations

from celery import shared_task

from tenants.tasks import TenantScopedTask

# A build of a tenant with 120M receipt lines takes minutes (docs/benchmarks.md): more than the default limit.
PREAGGREGATION_TIME_LIMIT = 3600


@shared_task(
    base=TenantScopedTask,
    ignore_result=True,
    soft_time_limit=PREAGGREGATION_TIME_LIMIT,
    time_limit=PREAGGREGATION_TIME_LIMIT + 300,
)
def preaggregations_refresh_task() -> dict[str, float]:
    """Rebuild the tenant's pre-aggregations if its data changed since the last build (beat: every 10 minutes)."""
    from analytics.preaggregations import preaggregations_rebuild_current

    return preaggregations_rebuild_current()
