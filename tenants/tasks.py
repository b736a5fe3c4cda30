"""Thin Celery wrappers over tenants services, and the fan-out that runs periodic work in every tenant."""

from __future__ import annotations

import random

from celery import shared_task
from django.db import connection
from django_tenants.utils import get_public_schema_name, tenant_context
from tenant_schemas_celery.app import get_schema_name_from_task
from tenant_schemas_celery.task import TenantTask


class TenantContextError(RuntimeError):
    """A tenant task was about to run outside the schema it was sent for."""


class TenantScopedTask(TenantTask):
    """Base of tasks that only make sense inside one tenant's schema: refuses to run anywhere else.

    tenant-schemas-celery switches to the sender's schema in a ``task_prerun`` handler, and
    Celery logs and swallows errors of signal handlers: a task sent from the public schema by
    mistake, or one whose tenant was deleted while it waited, would otherwise run against the
    public schema.
    """

    abstract = True

    def before_start(self, task_id, args, kwargs) -> None:
        sent_for = get_schema_name_from_task(self, kwargs)
        if not sent_for or sent_for == get_public_schema_name():
            raise TenantContextError(
                f"{self.name} was sent outside a tenant (send it inside tenant_context(tenant)); nothing was done."
            )
        if connection.schema_name != sent_for:
            raise TenantContextError(
                f"{self.name} was sent for the schema “{sent_for}”, which no tenant owns now; nothing was done."
            )


@shared_task(base=TenantScopedTask, ignore_result=True)
def invitations_purge_expired_task() -> int:
    from tenants.accounts.services import invitations_purge_expired

    return invitations_purge_expired()


@shared_task(ignore_result=True)
def job_runs_fail_stuck_task() -> int:
    from tenants.maintenance import job_runs_fail_stuck

    return job_runs_fail_stuck()


@shared_task(ignore_result=True)
def job_runs_delete_old_task() -> int:
    from tenants.maintenance import job_runs_delete_old

    return job_runs_delete_old()


@shared_task(bind=True, ignore_result=True)
def tenants_fan_out_task(self, task_name: str, spread_seconds: float = 60) -> int:
    """Send ``task_name`` once per client tenant, inside its schema; return how many were sent.

    The beat entry of every per-tenant periodic job (``cxplatform.schedules.for_each_tenant``).
    Each send is delayed by a random part of ``spread_seconds``, so tenants don't all hit the
    databases at the same moment.
    """
    from tenants.selectors import tenant_list

    task = self.app.tasks.get(task_name)
    if not isinstance(task, TenantScopedTask):
        raise ValueError(f"“{task_name}” is not a registered tenant task (a task with base=TenantScopedTask).")
    sent = 0
    for tenant in tenant_list():
        with tenant_context(tenant):
            task.apply_async(countdown=random.uniform(0, spread_seconds))
        sent += 1
    return sent
