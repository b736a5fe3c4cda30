"""Celery for real: the embedded worker and beat threads (no REDIS_URL) and a `celery worker` process (REDIS_URL).

The worker runs in other threads or another process, with its own database connection,
so these tests commit their data (transactional_db).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from cxplatform.celery import app
from cxplatform.schedules import for_each_tenant
from tenants.accounts.models import Invitation
from tenants.models import JobRun, Tenant
from tenants.tasks import invitations_purge_expired_task, tenants_fan_out_task

WAIT_SECONDS = 30
# A worker process imports Django and the app first, and runs system checks.
WORKER_PROCESS_WAIT_SECONDS = 90


def wait_until(condition: Callable[[], bool], *, what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Gave up after {timeout:g} s waiting for {what}.")
        time.sleep(0.1)


def finished_run(task_id: str) -> JobRun | None:
    return JobRun.objects.exclude(status=JobRun.Status.STARTED).filter(task_id=task_id).first()


def purgeable_expiry() -> datetime:
    """An expiry long enough ago for invitations_purge_expired to delete the invitation."""
    return timezone.now() - timedelta(days=40)


def expire_invitations(tenant: Tenant) -> None:
    """Make every invitation of ``tenant`` expire long enough ago to be purged."""
    with tenant_context(tenant):
        Invitation.objects.update(expires_at=purgeable_expiry())


def invitation_count(tenant: Tenant) -> int:
    with tenant_context(tenant):
        return Invitation.objects.count()


@pytest.fixture
def committed_tenants(transactional_db, make_tenant):
    """``make_tenant`` whose rows the worker can see; drops the schemas afterwards (the flush keeps schemas)."""
    made: list[Tenant] = []

    def make() -> Tenant:
        made.append(make_tenant())
        return made[-1]

    yield make
    for tenant in made:
        tenant.delete(force_drop=True)


@pytest.mark.broker
def test_embedded_worker_runs_a_task_in_the_schema_it_was_sent_from(committed_tenants, embedded_celery):
    alpha, beta = committed_tenants(), committed_tenants()
    expire_invitations(alpha)
    expire_invitations(beta)
    assert invitation_count(alpha) == invitation_count(beta) == 1  # each owner's invitation

    with tenant_context(alpha):
        task_id = invitations_purge_expired_task.delay().id

    wait_until(lambda: finished_run(task_id) is not None, what="the purge task to finish")
    run = finished_run(task_id)
    assert (run.status, run.tenant_id, run.error) == (JobRun.Status.SUCCEEDED, alpha.pk, "")
    assert invitation_count(alpha) == 0
    assert invitation_count(beta) == 1


@pytest.mark.broker
def test_tasks_sent_outside_a_tenant_fail_visibly_and_the_worker_keeps_working(committed_tenants, embedded_celery):
    shop = committed_tenants()
    expire_invitations(shop)
    # An invitation of the agency's own staff (public schema) that a purge would delete.
    Invitation.objects.create(
        email="staff@agency.test", role="owner", token_hash="staff", expires_at=purgeable_expiry()
    )

    public_id = invitations_purge_expired_task.delay().id
    # A tenant deleted while its task waited in the queue: no tenant owns the schema any more.
    orphan_id = invitations_purge_expired_task.apply_async(headers={"_schema_name": "deleted_shop"}).id
    for task_id in (public_id, orphan_id):
        wait_until(lambda task_id=task_id: finished_run(task_id) is not None, what=f"task {task_id} to finish")

    public_run, orphan_run = finished_run(public_id), finished_run(orphan_id)
    assert public_run.status == orphan_run.status == JobRun.Status.FAILED
    assert "sent outside a tenant" in public_run.error
    assert "“deleted_shop”, which no tenant owns" in orphan_run.error
    assert Invitation.objects.filter(email="staff@agency.test").exists(), "a refused task must not touch public"

    with tenant_context(shop):
        task_id = invitations_purge_expired_task.delay().id
    wait_until(lambda: finished_run(task_id) is not None, what="the task after the failures")
    assert finished_run(task_id).status == JobRun.Status.SUCCEEDED
    assert invitation_count(shop) == 0


@pytest.mark.broker
def test_embedded_beat_fans_periodic_work_out_to_every_tenant(committed_tenants, monkeypatch, request):
    alpha, beta = committed_tenants(), committed_tenants()
    expire_invitations(alpha)
    expire_invitations(beta)
    monkeypatch.setitem(
        app.conf,
        "beat_schedule",
        {"purge-every-second": for_each_tenant(invitations_purge_expired_task.name, every=1.0, spread_seconds=0)},
    )
    request.getfixturevalue("embedded_celery")  # beat reads the schedule when it starts

    wait_until(
        lambda: invitation_count(alpha) == invitation_count(beta) == 0, what="beat's fan-out to purge both tenants"
    )
    fan_outs = JobRun.objects.filter(task_name=tenants_fan_out_task.name)
    assert fan_outs.filter(status=JobRun.Status.SUCCEEDED, tenant=None).exists()
    purges = JobRun.objects.filter(task_name=invitations_purge_expired_task.name, status=JobRun.Status.SUCCEEDED)
    assert {alpha.pk, beta.pk} <= set(purges.values_list("tenant_id", flat=True))


def test_fan_out_refuses_a_task_that_is_not_a_tenant_task(db):
    for name in (tenants_fan_out_task.name, "no.such.task"):
        with pytest.raises(ValueError, match=re.escape(f"“{name}” is not a registered tenant task")):
            tenants_fan_out_task.apply(args=(name,), throw=True)


def database_url(database: dict) -> str:
    """A DATABASE_URL for Django's ``database`` settings (a socket directory as host is percent-encoded)."""
    password = f":{quote(database['PASSWORD'], safe='')}" if database.get("PASSWORD") else ""
    port = f":{database['PORT']}" if database.get("PORT") else ""
    host = quote(database["HOST"], safe="")
    return f"postgres://{quote(database['USER'], safe='')}{password}@{host}{port}/{quote(database['NAME'], safe='')}"


@pytest.mark.broker
@pytest.mark.skipif(not settings.REDIS_URL, reason="REDIS_URL not set")
def test_celery_worker_process_runs_a_tenant_task_sent_through_redis(committed_tenants, tmp_path: Path):
    alpha, beta = committed_tenants(), committed_tenants()
    expire_invitations(alpha)
    expire_invitations(beta)
    # A queue of our own: no other worker on this Redis (another test run, a developer's) takes the task.
    queue = f"cx-test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cxplatform.settings",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),  # the test database
        "REDIS_URL": settings.REDIS_URL,
        "CLICKHOUSE_URL": f"chdb://{tmp_path / 'clickhouse'}",  # chdb: one process per directory
        "CX_VAR_DIR": str(tmp_path / "var"),
    }
    log_path = tmp_path / "worker.log"
    command = [str(Path(sys.executable).with_name("celery")), "-A", "cxplatform", "worker", "--pool=solo"]
    command += ["-Q", queue, "--hostname", f"{queue}@%h", "--without-gossip", "--without-mingle", "--loglevel=INFO"]
    with log_path.open("wb") as log:
        worker = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)
    try:
        with tenant_context(alpha):
            invitations_purge_expired_task.apply_async(queue=queue)

        def purged() -> bool:
            assert worker.poll() is None, f"the worker exited:\n{log_path.read_text()[-3000:]}"
            return invitation_count(alpha) == 0

        wait_until(purged, what="the worker process to purge the tenant", timeout=WORKER_PROCESS_WAIT_SECONDS)
        assert invitation_count(beta) == 1
        run = JobRun.objects.get(task_name=invitations_purge_expired_task.name, tenant=alpha)
        wait_until(lambda: finished_run(run.task_id) is not None, what="the job run to be recorded")
        assert finished_run(run.task_id).status == JobRun.Status.SUCCEEDED
    finally:
        worker.terminate()  # SIGTERM: warm shutdown
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        with app.connection_for_write() as connection:
            leftover = app.amqp.queues[queue].bind(connection.default_channel)
            leftover.declare()  # lets this channel know the queue's bindings, so delete() removes them from Redis too
            leftover.delete()
