"""Beat schedule (production `celery beat` and the embedded beat thread alike)."""

from __future__ import annotations

from celery.schedules import crontab, schedule


def for_each_tenant(task_name: str, *, every: schedule | float, spread_seconds: float = 60) -> dict:
    """A beat entry that runs the tenant task ``task_name`` in every client tenant, spread over ``spread_seconds``."""
    return {
        "task": "tenants.tasks.tenants_fan_out_task",
        "schedule": every,
        "args": (task_name,),
        "kwargs": {"spread_seconds": spread_seconds},
    }


def in_public_schema(task_name: str, *, every: schedule | float) -> dict:
    """A beat entry that runs ``task_name`` once, in the public schema (agency-wide data such as the job history)."""
    return {"task": task_name, "schedule": every, "args": ()}


BEAT_SCHEDULE = {
    "invitations-purge-expired": for_each_tenant(
        "tenants.tasks.invitations_purge_expired_task", every=crontab(hour=3, minute=17)
    ),
    "moysklad-sync": for_each_tenant("integrations.tasks.moysklad_sync_task", every=crontab(minute="*/15")),
    # Pre-aggregations of tenants whose data changed since their last build (a no-op otherwise).
    "preaggregations-refresh": for_each_tenant(
        "analytics.tasks.preaggregations_refresh_task", every=crontab(minute="*/10"), spread_seconds=120
    ),
    # Housekeeping: runs whose worker died, abandoned uploads, history past its retention.
    "import-runs-fail-stuck": for_each_tenant(
        "integrations.tasks.import_runs_fail_stuck_task", every=crontab(minute="*/10")
    ),
    "uploads-delete-abandoned": for_each_tenant(
        "integrations.tasks.uploads_delete_abandoned_task", every=crontab(minute=41)
    ),
    "import-runs-delete-old": for_each_tenant(
        "integrations.tasks.import_runs_delete_old_task", every=crontab(hour=3, minute=47), spread_seconds=600
    ),
    "job-runs-fail-stuck": in_public_schema("tenants.tasks.job_runs_fail_stuck_task", every=crontab(minute="*/10")),
    "job-runs-delete-old": in_public_schema("tenants.tasks.job_runs_delete_old_task", every=crontab(hour=4, minute=7)),
}
