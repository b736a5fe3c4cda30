"""Housekeeping of the job history: jobs whose worker died are marked failed; old runs go, the latest stay."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from cxplatform.celery import app
from tenants.models import JobRun, Tenant
from tenants.tasks import (
    invitations_purge_expired_task,
    job_runs_delete_old_task,
    job_runs_fail_stuck_task,
    tenants_fan_out_task,
)

Status = JobRun.Status


@pytest.fixture
def housekeeping_settings(settings):
    settings.CELERY_TASK_TIME_LIMIT = 900
    settings.JOB_RUN_STUCK_MARGIN_MINUTES = 15
    settings.RUN_HISTORY_RETENTION_DAYS = 180
    return settings


def job_create(
    task_name: str, *, started_at: datetime, status: str = Status.STARTED, tenant: Tenant | None = None
) -> JobRun:
    job = JobRun.objects.create(task_id=uuid.uuid4().hex, task_name=task_name, status=status, tenant=tenant)
    JobRun.objects.filter(pk=job.pk).update(started_at=started_at)  # auto_now_add otherwise
    job.refresh_from_db()
    return job


def test_jobs_started_longer_ago_than_their_time_limit_and_margin_are_marked_failed(
    db, housekeeping_settings, monkeypatch
):
    now = timezone.now()
    purge, fan_out = invitations_purge_expired_task.name, tenants_fan_out_task.name
    # The default hard limit (15 min) plus the margin (15 min) is 30 minutes.
    stuck = job_create(purge, started_at=now - timedelta(minutes=31))
    running = job_create(purge, started_at=now - timedelta(minutes=29))
    finished = job_create(purge, started_at=now - timedelta(days=2), status=Status.SUCCEEDED)
    # A task with a hard limit of its own (2 h) is given that long.
    monkeypatch.setattr(app.tasks[fan_out], "time_limit", 7200)
    long_running = job_create(fan_out, started_at=now - timedelta(minutes=100))
    long_stuck = job_create(fan_out, started_at=now - timedelta(minutes=136))

    assert job_runs_fail_stuck_task.apply(throw=True).result == 2

    jobs = {job.pk: job for job in JobRun.objects.all()}
    assert jobs[stuck.pk].status == jobs[long_stuck.pk].status == Status.FAILED
    assert jobs[stuck.pk].error == ("Never finished within its time limit of 15 minutes: the worker probably stopped.")
    assert "time limit of 120 minutes" in jobs[long_stuck.pk].error
    assert jobs[stuck.pk].finished_at >= now
    assert jobs[running.pk].status == jobs[long_running.pk].status == Status.STARTED
    assert (jobs[finished.pk].status, jobs[finished.pk].error) == (Status.SUCCEEDED, "")


def test_retention_deletes_old_jobs_but_keeps_the_latest_run_of_each_task_in_each_tenant(
    make_tenant, housekeeping_settings
):
    alpha, beta = make_tenant(), make_tenant()
    now = timezone.now()
    purge, fan_out = invitations_purge_expired_task.name, tenants_fan_out_task.name
    JobRun.objects.all().delete()  # the onboarding's own jobs, if any

    def days_ago(days: int) -> datetime:
        return now - timedelta(days=days)

    alpha_old = job_create(purge, tenant=alpha, started_at=days_ago(400), status=Status.SUCCEEDED)
    alpha_latest = job_create(purge, tenant=alpha, started_at=days_ago(200), status=Status.FAILED)
    beta_recent = job_create(purge, tenant=beta, started_at=days_ago(10), status=Status.SUCCEEDED)
    beta_old = job_create(purge, tenant=beta, started_at=days_ago(181), status=Status.SUCCEEDED)
    public_old = job_create(fan_out, started_at=days_ago(300), status=Status.SUCCEEDED)
    public_latest = job_create(fan_out, started_at=days_ago(250), status=Status.SUCCEEDED)
    public_recent_other = job_create(purge, started_at=days_ago(1), status=Status.FAILED)

    assert job_runs_delete_old_task.apply(throw=True).result == 3

    kept = set(JobRun.objects.exclude(task_name=job_runs_delete_old_task.name).values_list("pk", flat=True))
    assert kept == {alpha_latest.pk, beta_recent.pk, public_latest.pk, public_recent_other.pk}
    assert {alpha_old.pk, beta_old.pk, public_old.pk}.isdisjoint(kept)
