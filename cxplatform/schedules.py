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


BEAT_SCHEDULE = {
    "invitations-purge-expired": for_each_tenant(
        "tenants.tasks.invitations_purge_expired_task", every=crontab(hour=3, minute=17)
    ),
    "moysklad-sync": for_each_tenant("integrations.tasks.moysklad_sync_task", every=crontab(minute="*/15")),
}
