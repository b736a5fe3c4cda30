"""Thin Celery wrapper over the file import service (registered by cxplatform.celery's autodiscovery)."""

from __future__ import annotations

from celery import shared_task
from django.db import connection
from django.utils import translation

from cxplatform.queues import CeleryQueue
from tenants.tasks import TenantScopedTask


@shared_task(base=TenantScopedTask, ignore_result=True, queue=CeleryQueue.LONG_RUNNING.value)
def file_import_task(import_run_id: int, stored_name: str) -> None:
    from integrations.files.services import file_import_stored

    # The report's reasons are stored as text: write them in the workspace's language.
    with translation.override(connection.tenant.locale):
        file_import_stored(import_run_id=import_run_id, stored_name=stored_name)
