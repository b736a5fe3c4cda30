from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from clickhouse_connect.driver.exceptions import OperationalError
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, tenant_context

from analytics.clickhouse.client import ClickHouseUnavailableError
from analytics.clickhouse.query import TENANT_PLACEHOLDER, tenant_query
from analytics.clickhouse.sql import FACT_TABLES
from tenants.accounts.models import AuditLogEntry, Invitation, User
from tenants.accounts.roles import Role
from tenants.accounts.services import site_url
from tenants.models import JobRun, Tenant


def tenant_owner_emails(tenant: Tenant) -> set[str]:
    """E-mails of the tenant's owners, and of pending owner invitations."""
    with tenant_context(tenant):
        users = User.objects.filter(role=Role.OWNER).values_list("email", flat=True)
        invited = Invitation.objects.filter(role=Role.OWNER, accepted_at__isnull=True).values_list("email", flat=True)
        return {e.lower() for e in [*users, *invited]}


# ClickHouse tables whose rows belong to a tenant (``tenant_id`` column); a new fact table is one more name here.
CLICKHOUSE_TENANT_TABLES: tuple[str, ...] = ("tenant_settings", *FACT_TABLES)
FAILED_JOBS_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class TenantHealth:
    """What the agency console shows of one tenant at a glance."""

    tenant: Tenant
    url: str | None
    users: int
    pending_invitations: int
    clickhouse_rows: int | None  # None: ClickHouse could not be asked
    last_job: JobRun | None
    failed_jobs_7d: int
    last_import_at: datetime | None


def tenant_list() -> QuerySet[Tenant]:
    """Every client tenant (not the agency's own public tenant), by name."""
    return Tenant.objects.exclude(schema_name=get_public_schema_name())


def tenant_url(tenant: Tenant) -> str | None:
    """The address of the tenant's workspace (its primary domain); None if it has no domain."""
    primary = next((domain for domain in tenant.domains.all() if domain.is_primary), None)
    return site_url(primary.domain) if primary is not None else None


def tenant_clickhouse_row_count(*, tenant: Tenant) -> int:
    """Rows the tenant owns across ``CLICKHOUSE_TENANT_TABLES``, in one statement."""
    counts = " + ".join(
        f"(SELECT count() FROM {table} WHERE tenant_id = {TENANT_PLACEHOLDER})" for table in CLICKHOUSE_TENANT_TABLES
    )
    return int(tenant_query(f"SELECT {counts}", tenant_id=tenant.pk).first_row[0])


def tenant_import_runs(*, tenant: Tenant, limit: int = 20) -> list:
    """The tenant's latest import runs across its data sources, newest first (the console's history)."""
    from integrations.models import ImportRun  # a tenant app: its table lives in the tenant's schema

    with tenant_context(tenant):
        return list(ImportRun.objects.select_related("data_source").order_by("-started_at")[:limit])


def tenant_last_import_at(*, tenant: Tenant) -> datetime | None:
    """When the tenant's last successful data import finished (None: never)."""
    from integrations.models import ImportRun  # a tenant app: its table lives in the tenant's schema

    with tenant_context(tenant):
        run = ImportRun.objects.filter(status=ImportRun.Status.SUCCEEDED).order_by("-finished_at").first()
        return run.finished_at if run is not None else None


def tenant_health_list(*, slug: str | None = None) -> list[TenantHealth]:
    """Health of every client tenant (or of the one with ``slug``), by name.

    ClickHouse being down does not fail the list: the row counts are None, and after the
    first failure no other tenant waits on it.
    """
    latest_job = JobRun.objects.filter(tenant=OuterRef("pk")).order_by("-started_at").values("pk")[:1]
    tenants = (
        tenant_list()
        .prefetch_related("domains")
        .annotate(
            last_job_pk=Subquery(latest_job),
            failed_jobs_7d=Count(
                "job_runs",
                filter=Q(
                    job_runs__status=JobRun.Status.FAILED,
                    job_runs__started_at__gte=timezone.now() - FAILED_JOBS_WINDOW,
                ),
            ),
        )
    )
    if slug is not None:
        tenants = tenants.filter(slug=slug)
    tenants = list(tenants)
    last_jobs = JobRun.objects.in_bulk([t.last_job_pk for t in tenants if t.last_job_pk is not None])
    clickhouse_reachable = True
    health = []
    for tenant in tenants:
        clickhouse_rows = None
        if clickhouse_reachable:
            try:
                clickhouse_rows = tenant_clickhouse_row_count(tenant=tenant)
            except (ClickHouseUnavailableError, OperationalError):
                clickhouse_reachable = False
        with tenant_context(tenant):
            users = User.objects.filter(is_active=True).count()
            pending_invitations = Invitation.objects.filter(
                accepted_at__isnull=True, expires_at__gt=timezone.now()
            ).count()
        health.append(
            TenantHealth(
                tenant=tenant,
                url=tenant_url(tenant),
                users=users,
                pending_invitations=pending_invitations,
                clickhouse_rows=clickhouse_rows,
                last_job=last_jobs.get(tenant.last_job_pk),
                failed_jobs_7d=tenant.failed_jobs_7d,
                last_import_at=tenant_last_import_at(tenant=tenant),
            )
        )
    return health


def audit_log_list(*, target: str | None = None) -> QuerySet[AuditLogEntry]:
    """Audit log of the current schema, newest first; ``target`` narrows it to one subject (a tenant's slug)."""
    entries = AuditLogEntry.objects.select_related("actor").order_by("-created_at", "-pk")
    if target is not None:
        entries = entries.filter(target=target)
    return entries
