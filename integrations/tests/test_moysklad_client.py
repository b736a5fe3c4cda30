"""The MoySklad client against the fake server: what it sends, what it retries, what it refuses to retry.

Also pins the fake's own contract (gzip mandatory, expand ignored above 100, the parallel
limit), since the importer's tests are only as good as the fake is faithful.
"""

from __future__ import annotations

import json
import socket
import threading
from decimal import Decimal

import pytest
import urllib3

from integrations.moysklad.client import (
    MoySkladAuthError,
    MoySkladClient,
    MoySkladRequestError,
    MoySkladUnavailableError,
    RetryPolicy,
)
from integrations.moysklad.fake_account import FakeAccount
from integrations.moysklad.fake_server import FakeMoySklad

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, connect_timeout=1, read_timeout=5)


@pytest.fixture(scope="module")
def account() -> FakeAccount:
    return FakeAccount.generate(seed=7, counterparties=10, demands=30, orders=4)


@pytest.fixture
def fake(account):
    fake = FakeMoySklad(account)
    with fake.serve() as base_url:
        fake.base_url = base_url
        yield fake


def client_for(fake: FakeMoySklad, *, token: str | None = None, retry: RetryPolicy = FAST) -> MoySkladClient:
    return MoySkladClient(base_url=fake.base_url, token=token or fake.token, retry=retry)


def test_sends_token_and_gzip_and_reads_kopecks_exactly(fake):
    page = client_for(fake).get("entity/retaildemand", {"limit": 5, "expand": "positions"})
    assert page["meta"]["size"] == len(fake.account.live_documents("retaildemand"))
    position = page["rows"][0]["positions"]["rows"][0]
    assert isinstance(position["price"], int | Decimal)  # never a binary float
    record = fake.requests[-1]
    assert "gzip" in record.accept_encoding and record.status == 200


def test_the_fake_refuses_requests_without_gzip_or_token(fake):
    http = urllib3.PoolManager()
    url = f"{fake.base_url}/entity/retaildemand"
    plain = http.request("GET", url, headers={"Authorization": f"Bearer {fake.token}", "Accept-Encoding": "identity"})
    assert (plain.status, plain.data) == (415, b"")
    anonymous = http.request("GET", url, headers={"Accept-Encoding": "gzip"})
    assert anonymous.status == 401
    assert json.loads(anonymous.data)["errors"][0]["code"] == 1056


def test_the_fake_ignores_expand_above_100(fake):
    client = client_for(fake)
    expanded = client.get("entity/retaildemand", {"limit": 100, "expand": "positions"})
    ignored = client.get("entity/retaildemand", {"limit": 101, "expand": "positions"})
    assert "rows" in expanded["rows"][0]["positions"]
    assert "rows" not in ignored["rows"][0]["positions"]  # only the meta: a trap for importers


def test_bad_token_fails_at_once_with_the_url(fake):
    with pytest.raises(MoySkladAuthError) as error:
        client_for(fake, token="wrong").get("context/employee")
    assert error.value.status == 401 and error.value.code == 1056
    assert f"{fake.base_url}/context/employee" in str(error.value)
    assert len(fake.requests) == 1  # a refused token is never retried


def test_validation_errors_are_not_retried(fake):
    with pytest.raises(MoySkladRequestError) as error:
        client_for(fake).get("entity/retaildemand", {"filter": "updated>=yesterday"})
    assert (error.value.status, error.value.code) == (400, 1035)
    assert "entity/retaildemand" in str(error.value)
    assert len(fake.requests) == 1


def test_429_waits_as_long_as_the_headers_say(fake):
    fake.throttle(next=2, retry_after_ms=300)
    employee = client_for(fake).get("context/employee")
    assert employee["id"] == fake.account.employees[0]["id"]
    statuses = [r.status for r in fake.requests]
    assert statuses == [429, 429, 200]
    gaps = [later.at - earlier.at for earlier, later in zip(fake.requests, fake.requests[1:], strict=False)]
    assert all(gap >= 0.3 for gap in gaps)  # X-Lognex-Retry-After, not the 10 ms backoff


def test_server_errors_and_timeouts_are_retried(fake):
    fake.fail(next=2, status=502)
    client = client_for(fake, retry=RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, read_timeout=0.5))
    assert client.get("context/employee")["id"]
    received = fake.requests_received
    fake.slow(next=1, seconds=1.5)
    assert client.get("context/employee")["id"]
    assert fake.requests_received >= received + 2  # the slow one timed out and was asked again


def test_gives_up_after_the_last_attempt_naming_the_url(fake):
    fake.fail(next=10, status=503)
    with pytest.raises(MoySkladUnavailableError) as error:
        client_for(fake).get("entity/counterparty", {"limit": 10})
    assert f"{fake.base_url}/entity/counterparty" in str(error.value)
    assert "HTTP 503" in str(error.value)
    assert len(fake.requests) == FAST.attempts


def test_unreachable_server_names_the_url():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/api/remap/1.2"
    with pytest.raises(MoySkladUnavailableError) as error:
        MoySkladClient(base_url=base_url, token="t", retry=FAST).get("context/employee")
    assert f"{base_url}/context/employee" in str(error.value)


def test_paces_itself_by_the_rate_headers(account):
    fake = FakeMoySklad(account, rate_limit=(3, 600))
    with fake.serve() as base_url:
        client = MoySkladClient(base_url=base_url, token=fake.token, retry=FAST)
        for _ in range(7):
            client.get("context/employee")
    assert [r.status for r in fake.requests] == [200] * 7  # waited for the bucket instead of hitting 429


def test_hrefs_are_followed_on_the_configured_host_only(fake):
    client = client_for(fake)
    foreign = "https://elsewhere.example/api/remap/1.2/entity/employee/" + fake.account.employees[1]["id"]
    assert client.url_for(foreign) == f"{fake.base_url}/entity/employee/{fake.account.employees[1]['id']}"
    assert client.get(foreign)["name"] == fake.account.employees[1]["name"]


def test_the_fake_limits_parallel_requests(fake):
    fake.slow(next=8, seconds=0.4)
    http = urllib3.PoolManager(maxsize=10)
    headers = {"Authorization": f"Bearer {fake.token}", "Accept-Encoding": "gzip"}
    statuses: list[int] = []

    def call() -> None:
        statuses.append(http.request("GET", f"{fake.base_url}/context/employee", headers=headers).status)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.max_parallel_seen > 5
    assert 429 in statuses and 200 in statuses
