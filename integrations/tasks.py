"""Thin Celery wrappers over integrations services."""

from __future__ import annotations

from celery import shared_task

from tenants.tasks import TenantScopedTask


@shared_task(base=TenantScopedTask, ignore_result=True)
def moysklad_sync_task(full: bool = False) -> int | None:
    """Sync the tenant's MoySklad account if it has one (beat: every 15 minutes); returns the ImportRun id."""
    from integrations.moysklad.services import moysklad_sync_if_connected

    run = moysklad_sync_if_connected(full=full)
    return run.pk if run else None
