"""The scheduled MoySklad sync: the beat entry, the per-tenant task, and one sync per connection at a time."""

from __future__ import annotations

import threading

from django.db import connection
from django_tenants.utils import tenant_context

from cxplatform.celery import app
from cxplatform.schedules import BEAT_SCHEDULE
from integrations.models import ImportRun
from integrations.moysklad.fake_server import FakeMoySklad
from integrations.moysklad.selectors import moysklad_source_get
from integrations.moysklad.services import moysklad_source_connect, moysklad_sync_if_connected, moysklad_sync_lock
from integrations.tasks import moysklad_sync_task
from tenants.tasks import TenantScopedTask


def test_beat_fans_the_sync_out_to_every_tenant():
    entries = [e for e in BEAT_SCHEDULE.values() if e["args"] == (moysklad_sync_task.name,)]
    assert len(entries) == 1
    assert isinstance(app.tasks[moysklad_sync_task.name], TenantScopedTask)


def test_the_task_syncs_a_connected_tenant_and_skips_the_others(make_tenant):
    connected, bare = make_tenant(), make_tenant()
    fake = FakeMoySklad(seed=4)
    with fake.serve() as base_url:
        with tenant_context(connected):
            moysklad_source_connect(base_url=base_url, token=fake.token)
            run_id = moysklad_sync_task.apply(throw=True).result
            assert ImportRun.objects.get(pk=run_id).status == ImportRun.Status.SUCCEEDED
        with tenant_context(bare):
            assert moysklad_sync_task.apply(throw=True).result is None
            assert not ImportRun.objects.exists()


def test_a_sync_already_running_is_skipped_not_doubled(make_tenant):
    tenant = make_tenant()
    with tenant_context(tenant):
        moysklad_source_connect(base_url="http://127.0.0.1:9/api/remap/1.2", token="t")
        source = moysklad_source_get()
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # another worker, on its own database session
        try:
            with tenant_context(tenant), moysklad_sync_lock(source):
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        with tenant_context(tenant):
            assert moysklad_sync_if_connected() is None  # no request made, nothing recorded
            assert not ImportRun.objects.exists()
    finally:
        release.set()
        holder.join()
