"""Thin Celery wrappers over tenants services."""

from __future__ import annotations

import random

from celery import shared_task
from django_tenants.utils import get_tenant_model, tenant_context
from tenant_schemas_celery.task import TenantTask


@shared_task(base=TenantTask, bind=True, ignore_result=True)
def invitations_purge_expired_task(self) -> int:
    from tenants.accounts.services import invitations_purge_expired

    return invitations_purge_expired()


@shared_task(ignore_result=True)
def invitations_purge_expired_dispatch_task() -> None:
    """Beat entry: fan out one task per tenant, spread over a minute (no thundering herd)."""
    for tenant in get_tenant_model().objects.exclude(schema_name="public"):
        with tenant_context(tenant):
            invitations_purge_expired_task.apply_async(countdown=random.uniform(0, 60))
