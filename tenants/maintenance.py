"""Housekeeping of the job history (``JobRun``, public schema): jobs whose worker died, old runs."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.models import JobRun

logger = logging.getLogger(__name__)


def _hard_time_limit(task_name: str) -> timedelta:
    """How long ``task_name`` may run before Celery kills it: its own hard limit, or the global one."""
    task = current_app.tasks.get(task_name)
    return timedelta(seconds=getattr(task, "time_limit", None) or settings.CELERY_TASK_TIME_LIMIT)


def job_runs_fail_stuck() -> int:
    """Mark failed the jobs still "started" JOB_RUN_STUCK_MARGIN_MINUTES past their hard time limit; return how many.

    No task runs that long, so the worker died before reporting the outcome (a killed process
    sends no failure signal), and the console would count the job as running forever.
    """
    now = timezone.now()
    margin = timedelta(minutes=settings.JOB_RUN_STUCK_MARGIN_MINUTES)
    started = JobRun.objects.filter(status=JobRun.Status.STARTED)
    failed = 0
    for task_name in started.filter(started_at__lt=now - margin).values_list("task_name", flat=True).distinct():
        limit = _hard_time_limit(task_name)
        error = _("Never finished within its time limit of %(minutes)d minutes: the worker probably stopped.") % {
            "minutes": int(limit.total_seconds() // 60)
        }
        failed += started.filter(task_name=task_name, started_at__lt=now - limit - margin).update(
            status=JobRun.Status.FAILED, error=error, finished_at=now
        )
    if failed:
        logger.warning("Marked %d stuck job run(s) failed.", failed)
    return failed


def job_runs_delete_old() -> int:
    """Delete job runs started more than RUN_HISTORY_RETENTION_DAYS ago; return how many.

    The latest run of each task in each tenant stays, whatever its age: the console shows a tenant's last job.
    """
    cutoff = timezone.now() - timedelta(days=settings.RUN_HISTORY_RETENTION_DAYS)
    latest = (
        JobRun.objects.order_by("tenant_id", "task_name", "-started_at", "-pk")
        .distinct("tenant_id", "task_name")
        .values("pk")
    )
    deleted, _by_model = JobRun.objects.filter(started_at__lt=cutoff).exclude(pk__in=latest).delete()
    return deleted
