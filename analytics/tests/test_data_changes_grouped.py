"""Data-version bumps of grouped writes: one per block, also for writes handed to other threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from analytics.clickhouse.query import (
    data_changes_carried,
    data_changes_grouped,
    data_version,
    tenant_insert,
    tenant_query,
)


def bumps_since(tenant_id: int, version: int) -> list[tuple[str, int]]:
    """The (fact, version) rows of the tenant's data-version bumps after ``version``, one row per fact per bump."""
    return sorted(
        tenant_query(
            "SELECT fact, version FROM data_versions WHERE tenant_id = {tenant_id:UInt32} AND version > {since:UInt64}",
            {"since": version},
            tenant_id=tenant_id,
        ).result_rows
    )


def event_write(table: str, tenant_id: int) -> Callable[[], int]:
    """A real insert of one event into ``table`` (message_events or web_events)."""
    row = ("e-1", datetime(2026, 3, 1, 9, tzinfo=UTC), "opened" if table == "message_events" else "visit", 1)
    return lambda: tenant_insert(table, [row], ["event_id", "ts", "event_type", "version"], tenant_id=tenant_id)


def test_writes_carried_to_another_thread_join_the_block_and_bump_once(tenant):
    web_write, writers = event_write("web_events", tenant.pk), []

    def web_write_noting_its_thread() -> int:
        writers.append(threading.current_thread())
        return web_write()

    before = data_version(tenant.pk)
    with ThreadPoolExecutor(max_workers=1) as pool, data_changes_grouped():
        event_write("message_events", tenant.pk)()
        pool.submit(data_changes_carried(web_write_noting_its_thread)).result()
        assert writers and threading.current_thread() not in writers
        assert bumps_since(tenant.pk, before) == []  # not before the block ends
    [(fact_1, version_1), (fact_2, version_2)] = bumps_since(tenant.pk, before)
    assert (fact_1, fact_2) == ("message_events", "web_events")
    assert version_1 == version_2 == data_version(tenant.pk)


def test_a_pool_thread_leaves_the_block_when_the_carried_write_returns(tenant):
    with ThreadPoolExecutor(max_workers=1) as pool:  # one thread: the later write runs where the carried one did
        before = data_version(tenant.pk)
        with data_changes_grouped():
            pool.submit(data_changes_carried(event_write("message_events", tenant.pk))).result()
            pool.submit(event_write("web_events", tenant.pk)).result()  # not carried: bumps by itself, now
            assert [fact for fact, _version in bumps_since(tenant.pk, before)] == ["web_events"]
        assert [fact for fact, _version in bumps_since(tenant.pk, before)] == ["message_events", "web_events"]


def test_a_carried_write_that_lands_after_the_block_bumps_by_itself(tenant):
    before = data_version(tenant.pk)
    with data_changes_grouped():
        late_write = data_changes_carried(event_write("web_events", tenant.pk))
    assert bumps_since(tenant.pk, before) == []  # the block wrote nothing
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(late_write).result()
    assert [fact for fact, _version in bumps_since(tenant.pk, before)] == ["web_events"]


def test_outside_a_block_a_write_is_carried_as_it_is(tenant):
    write = event_write("web_events", tenant.pk)
    assert data_changes_carried(write) is write
