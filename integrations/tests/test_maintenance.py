"""Housekeeping of a tenant's imports: stuck runs, abandoned uploads, history retention, and their beat entries."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_tenants.utils import tenant_context

from cxplatform.celery import app
from cxplatform.schedules import BEAT_SCHEDULE, for_each_tenant
from integrations.files.columns import Dataset
from integrations.files.services import (
    _Progress,
    file_import_stored,
    file_source_get_or_create,
    file_upload_path,
    file_upload_store,
    import_run_create,
)
from integrations.maintenance import import_runs_delete_old, import_runs_fail_stuck, uploads_delete_abandoned
from integrations.models import DataSource, ImportRun
from integrations.tasks import import_runs_delete_old_task, import_runs_fail_stuck_task, uploads_delete_abandoned_task
from tenants.models import Tenant
from tenants.selectors import tenant_last_import_at
from tenants.tasks import TenantScopedTask, job_runs_delete_old_task, job_runs_fail_stuck_task

Status = ImportRun.Status
GOOD_CSV = b"order_id,ts,amount\nR1,2026-03-01 10:00,100.50\nR2,2026-03-02,5\n"


@pytest.fixture
def housekeeping_settings(settings):
    settings.IMPORT_RUN_STUCK_MINUTES = 30
    settings.IMPORT_UPLOAD_RETENTION_HOURS = 24
    settings.RUN_HISTORY_RETENTION_DAYS = 180
    return settings


@pytest.fixture
def make_shop(make_tenant):
    """Tenants with fresh slugs, so their media folders start empty; the folders are removed afterwards."""
    made: list[Tenant] = []

    def make(**kwargs) -> Tenant:
        made.append(make_tenant(f"hk-{uuid.uuid4().hex[:10]}", **kwargs))
        return made[-1]

    yield make
    for tenant in made:
        with tenant_context(tenant):
            shutil.rmtree(default_storage.path(""), ignore_errors=True)


def run_create(source: DataSource, *, status: str = Status.RUNNING, message: str = "", **times: datetime) -> ImportRun:
    """An import run with ``started_at``, ``heartbeat_at`` or ``finished_at`` set as given (they are automatic)."""
    run = ImportRun.objects.create(data_source=source, dataset="sales", status=status, message=message)
    if status != Status.RUNNING:
        times.setdefault("finished_at", times.get("started_at", run.started_at))
    ImportRun.objects.filter(pk=run.pk).update(**times)
    run.refresh_from_db()
    return run


def upload_store(*, age: timedelta) -> str:
    """An upload as the upload page keeps it, last modified ``age`` ago."""
    stored_name = file_upload_store(uploaded=SimpleUploadedFile("export.csv", GOOD_CSV))
    modified = (timezone.now() - age).timestamp()
    os.utime(default_storage.path(stored_name), (modified, modified))
    return stored_name


# --- Stuck runs ---------------------------------------------------------------------------------------------------


def test_runs_without_a_heartbeat_are_marked_failed_and_live_ones_are_left_alone(make_shop, housekeeping_settings):
    shop = make_shop(timezone="Asia/Vladivostok")
    now = timezone.now()
    with tenant_context(shop):
        source = file_source_get_or_create()
        stuck = run_create(source, message="Posted by token “pos”", heartbeat_at=now - timedelta(minutes=31))
        queued = run_create(source, started_at=now - timedelta(hours=2), heartbeat_at=now - timedelta(hours=2))
        live = run_create(source, started_at=now - timedelta(hours=2), heartbeat_at=now - timedelta(minutes=29))
        finished = run_create(source, status=Status.SUCCEEDED, heartbeat_at=now - timedelta(days=3))

        assert import_runs_fail_stuck() == 2

        runs = {run.pk: run for run in ImportRun.objects.all()}
    assert runs[stuck.pk].status == runs[queued.pk].status == Status.FAILED
    since = stuck.heartbeat_at.astimezone(ZoneInfo("Asia/Vladivostok")).strftime("%Y-%m-%d %H:%M")
    assert runs[stuck.pk].message == (
        f"Posted by token “pos”\nNo progress since {since} +10; the worker probably stopped. Run the import again."
    )
    assert runs[queued.pk].message.startswith("No progress since ")
    assert runs[stuck.pk].finished_at >= now and runs[queued.pk].finished_at >= now
    assert (runs[live.pk].status, runs[live.pk].message, runs[live.pk].finished_at) == (Status.RUNNING, "", None)
    assert (runs[finished.pk].status, runs[finished.pk].finished_at) == (Status.SUCCEEDED, finished.finished_at)


def test_saving_progress_is_a_heartbeat(make_shop, housekeeping_settings):
    shop = make_shop()
    with tenant_context(shop):
        run = run_create(file_source_get_or_create(), heartbeat_at=timezone.now() - timedelta(hours=1))
        _Progress(run).update(0.5, rows_read=1000)  # what a file import does while it reads
        assert import_runs_fail_stuck() == 0
        run.refresh_from_db()
    assert (run.status, run.progress, run.rows_read) == (Status.RUNNING, 0.5, 1000)


# --- Uploads ------------------------------------------------------------------------------------------------------


def test_abandoned_uploads_are_deleted_and_recent_ones_kept(make_shop, housekeeping_settings):
    shop = make_shop()
    with tenant_context(shop):
        abandoned = upload_store(age=timedelta(hours=25))
        recent = upload_store(age=timedelta(hours=23))
        logo = default_storage.save("branding/logo.png", SimpleUploadedFile("logo.png", b"png"))
        os.utime(default_storage.path(logo), (0, 0))  # old, but not an upload

        assert uploads_delete_abandoned() == 1

        assert file_upload_path(stored_name=abandoned) is None
        assert file_upload_path(stored_name=recent) is not None
        assert default_storage.exists(logo)
        assert uploads_delete_abandoned() == 0


def test_a_tenant_without_uploads_has_nothing_to_delete(make_shop, housekeeping_settings):
    with tenant_context(make_shop()):
        assert not default_storage.exists("imports")
        assert uploads_delete_abandoned() == 0


def test_an_import_deletes_its_upload_when_it_succeeds(make_shop):
    shop = make_shop()
    with tenant_context(shop):
        stored_name = upload_store(age=timedelta(0))
        run = import_run_create(data_source=file_source_get_or_create(), dataset=Dataset.SALES, file_name="e.csv")
        run = file_import_stored(import_run_id=run.pk, stored_name=stored_name)
        assert run.status == Status.SUCCEEDED, run.message
        assert file_upload_path(stored_name=stored_name) is None


# --- Retention ----------------------------------------------------------------------------------------------------


def test_retention_deletes_old_runs_but_keeps_each_sources_latest_and_latest_successful_run(
    make_shop, housekeeping_settings
):
    shop = make_shop()
    now = timezone.now()

    def days_ago(days: int) -> datetime:
        return now - timedelta(days=days)

    with tenant_context(shop):
        pos, crm, api = (
            DataSource.objects.create(kind=DataSource.Kind.FILE, name=name) for name in ("POS", "CRM", "API")
        )
        # POS: its latest run failed; the latest success before it must stay for "last successful import".
        run_create(pos, status=Status.SUCCEEDED, started_at=days_ago(300))
        pos_success = run_create(pos, status=Status.SUCCEEDED, started_at=days_ago(200))
        pos_failed = run_create(pos, status=Status.FAILED, started_at=days_ago(190))
        # CRM: everything is old; its latest run is also its latest success.
        run_create(crm, status=Status.FAILED, started_at=days_ago(260))
        crm_latest = run_create(crm, status=Status.SUCCEEDED, started_at=days_ago(250))
        # API: recent runs; the old ones go, whatever their outcome.
        run_create(api, status=Status.SUCCEEDED, started_at=days_ago(181))
        run_create(api, status=Status.FAILED, started_at=days_ago(400))
        api_recent_failed = run_create(api, status=Status.FAILED, started_at=days_ago(179))
        api_recent = run_create(api, status=Status.SUCCEEDED, started_at=days_ago(30))
        last_import_before = tenant_last_import_at(tenant=shop)

        assert import_runs_delete_old() == 4

        kept = set(ImportRun.objects.values_list("pk", flat=True))
    assert kept == {pos_success.pk, pos_failed.pk, crm_latest.pk, api_recent_failed.pk, api_recent.pk}
    assert tenant_last_import_at(tenant=shop) == last_import_before == api_recent.finished_at


# --- Tasks, tenants, beat -----------------------------------------------------------------------------------------


def test_the_tasks_work_in_the_tenant_they_run_for_only(make_shop, housekeeping_settings):
    alpha, beta = make_shop(), make_shop()
    now = timezone.now()
    seeded = {}
    for shop in (alpha, beta):
        with tenant_context(shop):
            source = file_source_get_or_create()
            seeded[shop.pk] = {
                "stuck": run_create(source, heartbeat_at=now - timedelta(hours=1)).pk,
                "old": run_create(source, status=Status.FAILED, started_at=now - timedelta(days=365)).pk,
                "latest": run_create(source, status=Status.SUCCEEDED).pk,
                "upload": upload_store(age=timedelta(days=2)),
            }

    def state(shop: Tenant) -> tuple:
        with tenant_context(shop):
            ids = seeded[shop.pk]
            stuck = ImportRun.objects.filter(pk=ids["stuck"]).values_list("status", flat=True).first()
            old_exists = ImportRun.objects.filter(pk=ids["old"]).exists()
            return stuck, old_exists, file_upload_path(stored_name=ids["upload"]) is not None

    with tenant_context(alpha):
        assert import_runs_fail_stuck_task.apply(throw=True).result == 1
        assert uploads_delete_abandoned_task.apply(throw=True).result == 1
        assert import_runs_delete_old_task.apply(throw=True).result == 1
    assert state(alpha) == (Status.FAILED, False, False)
    assert state(beta) == (Status.RUNNING, True, True)

    with tenant_context(beta):
        assert import_runs_fail_stuck_task.apply(throw=True).result == 1
    assert state(beta) == (Status.FAILED, True, True)


@pytest.mark.parametrize(
    "task", [import_runs_fail_stuck_task, uploads_delete_abandoned_task, import_runs_delete_old_task]
)
def test_beat_runs_each_import_housekeeping_task_in_every_tenant(task):
    entries = [entry for entry in BEAT_SCHEDULE.values() if entry.get("args") == (task.name,)]
    assert len(entries) == 1
    assert entries[0]["task"] == for_each_tenant(task.name, every=60)["task"]
    assert isinstance(app.tasks[task.name], TenantScopedTask)


@pytest.mark.parametrize("task", [job_runs_fail_stuck_task, job_runs_delete_old_task])
def test_beat_runs_the_job_history_housekeeping_once_in_the_public_schema(task):
    entries = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == task.name]
    assert len(entries) == 1 and entries[0]["args"] == ()
    assert not isinstance(app.tasks[task.name], TenantScopedTask)
