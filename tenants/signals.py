"""Records every Celery task run in ``JobRun`` so the console can show failing jobs per tenant."""

from __future__ import annotations

from celery.signals import task_failure, task_prerun, task_success
from django.db import connection
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from tenants.models import JobRun


@task_prerun.connect(dispatch_uid="tenants_job_run_started")
def _job_started(task_id, task, **kwargs) -> None:
    # Connected after tenant-schemas-celery's own prerun handler, so the schema is already switched.
    tenant_id = None if connection.schema_name == get_public_schema_name() else getattr(connection.tenant, "pk", None)
    JobRun.objects.update_or_create(
        task_id=task_id,
        defaults={
            "task_name": task.name,
            "tenant_id": tenant_id,
            "status": JobRun.Status.STARTED,
        },
    )


@task_success.connect(dispatch_uid="tenants_job_run_succeeded")
def _job_succeeded(sender, **kwargs) -> None:
    JobRun.objects.filter(task_id=sender.request.id).update(status=JobRun.Status.SUCCEEDED, finished_at=timezone.now())


@task_failure.connect(dispatch_uid="tenants_job_run_failed")
def _job_failed(task_id, exception, **kwargs) -> None:
    JobRun.objects.filter(task_id=task_id).update(
        status=JobRun.Status.FAILED, error=f"{type(exception).__name__}: {exception}", finished_at=timezone.now()
    )
