"""Beat schedule (production `celery beat` and the embedded beat thread alike)."""

from celery.schedules import crontab

BEAT_SCHEDULE = {
    "invitations-purge-expired": {
        "task": "tenants.tasks.invitations_purge_expired_dispatch_task",
        "schedule": crontab(hour=3, minute=17),
    },
}
