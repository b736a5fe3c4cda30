"""Thin Celery wrappers over integrations services."""

from __future__ import annotations

from celery import shared_task
from django.db import connection
from django.utils import translation

from tenants.tasks import TenantScopedTask


@shared_task(base=TenantScopedTask, ignore_result=True)
def moysklad_sync_task(full: bool = False) -> int | None:
    """Sync the tenant's MoySklad account if it has one (beat: every 15 minutes); returns the ImportRun id."""
    from integrations.moysklad.services import moysklad_sync_if_connected

    run = moysklad_sync_if_connected(full=full)
    return run.pk if run else None


# Housekeeping (beat: cxplatform.schedules).


@shared_task(base=TenantScopedTask, ignore_result=True)
def import_runs_fail_stuck_task() -> int:
    from integrations.maintenance import import_runs_fail_stuck

    # The runs' messages are stored as text: write them in the workspace's language.
    with translation.override(connection.tenant.locale):
        return import_runs_fail_stuck()


@shared_task(base=TenantScopedTask, ignore_result=True)
def uploads_delete_abandoned_task() -> int:
    from integrations.maintenance import uploads_delete_abandoned

    return uploads_delete_abandoned()


@shared_task(base=TenantScopedTask, ignore_result=True)
def import_runs_delete_old_task() -> int:
    from integrations.maintenance import import_runs_delete_old

    return import_runs_delete_old()
