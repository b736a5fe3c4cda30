"""``/healthz`` against the real services: all up, then each of Postgres, ClickHouse and the broker unreachable."""

from __future__ import annotations

import socket

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client

from analytics.clickhouse.client import reset_clients
from cxplatform.celery import app

SERVICES = ("postgres", "clickhouse", "broker")


@pytest.fixture
def closed_port():
    """A loopback TCP port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def services_up(db, settings, request):
    """Every backing service reachable; without REDIS_URL that includes this process's embedded worker."""
    if settings.CELERY_EMBEDDED:
        request.getfixturevalue("embedded_celery")


def get_health(client: Client, host: str = "localhost") -> tuple[int, dict]:
    response = client.get("/healthz", HTTP_HOST=host)
    return response.status_code, response.json()


def assert_only_down(response: tuple[int, dict], service: str, reason: str) -> None:
    status, body = response
    assert (status, body["status"]) == (503, "down")
    assert reason in body["services"][service]
    assert body["services"][service].startswith("down: ")
    assert body["services"] | {service: "ok"} == dict.fromkeys(SERVICES, "ok"), "only one service is down"


@pytest.mark.broker
def test_all_up_on_the_console_a_tenant_and_an_unknown_host(services_up, make_tenant, client, tenant_client):
    all_ok = {"status": "ok", "services": dict.fromkeys(SERVICES, "ok")}
    assert get_health(client, host="localhost") == (200, all_ok)
    response = tenant_client(make_tenant()).get("/healthz")
    assert (response.status_code, response.json()) == (200, all_ok)
    # Container health checks and load balancers call by service name or IP, which no tenant owns.
    assert get_health(client, host="web:8000") == (200, all_ok)


@pytest.mark.broker
def test_postgres_down(services_up, client, closed_port):
    reachable = connections[DEFAULT_DB_ALIAS]
    unreachable = type(reachable)(
        {**reachable.settings_dict, "HOST": "127.0.0.1", "PORT": str(closed_port)}, alias=DEFAULT_DB_ALIAS
    )
    connections[DEFAULT_DB_ALIAS] = unreachable  # this thread's connection only; the worker threads keep theirs
    try:
        response = get_health(client)
    finally:
        connections[DEFAULT_DB_ALIAS] = reachable
    assert_only_down(response, "postgres", f'connection to server at "127.0.0.1", port {closed_port} failed')


@pytest.mark.broker
def test_clickhouse_down(services_up, client, settings, closed_port):
    settings.CLICKHOUSE_URL = f"http://127.0.0.1:{closed_port}"
    reset_clients()
    try:
        response = get_health(client)
    finally:
        reset_clients()
    assert_only_down(response, "clickhouse", f"ClickHouse at http://127.0.0.1:{closed_port} is unreachable")


def test_redis_down(db, client, settings, monkeypatch, closed_port):
    settings.CELERY_EMBEDDED = False
    # The Celery app read its configuration at import; the check opens a connection with the app's current one.
    monkeypatch.setitem(app.conf, "broker_url", f"redis://127.0.0.1:{closed_port}/0")
    assert_only_down(get_health(client), "broker", f"127.0.0.1:{closed_port}")


def test_embedded_mode_without_a_worker_in_this_process_is_down(db, client, settings):
    if not settings.CELERY_EMBEDDED:
        pytest.skip("REDIS_URL is set: the broker is Redis, not an in-process queue")
    assert_only_down(get_health(client), "broker", "no Celery worker in this process")
