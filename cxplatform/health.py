"""``/healthz``: can this process use each backing service? HTTP 503 naming the ones that are down.

The answer is ``{"status": "ok" | "down", "services": {name: "ok" | "down: <reason>"}}`` for
``postgres``, ``clickhouse`` and ``broker``. What "broker ok" means depends on the mode:

- with ``REDIS_URL``: a connection to Redis opens. Workers are separate processes and are
  watched by their own supervisor.
- embedded (no ``REDIS_URL``): tasks go to an in-memory queue that only a worker thread of
  this same process can drain, so "ok" means this process runs the embedded worker and beat
  (``manage.py serve``) and both threads are alive. A process without them (gunicorn or
  ``runserver`` without ``REDIS_URL``, a management command, a test) reports the broker
  down, because tasks sent from it would never run.

``HealthzMiddleware`` answers before tenant resolution: that needs Postgres (so a route
behind it could only answer 500 when Postgres is down) and knows only our domains (load
balancers and container health checks call by IP or service name).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse, JsonResponse

HEALTHZ_PATH = "/healthz"
BROKER_CONNECT_TIMEOUT_SECONDS = 3


def check_postgres(db: BaseDatabaseWrapper | None = None) -> None:
    """Run ``SELECT 1`` on ``db`` (default: this thread's default connection)."""
    with (db or connections[DEFAULT_DB_ALIAS]).cursor() as cursor:
        cursor.execute("SELECT 1")


def check_clickhouse() -> None:
    from analytics.clickhouse.client import get_client

    get_client().command("SELECT 1")


def check_broker() -> None:
    if settings.CELERY_EMBEDDED:
        from cxplatform.embedded_celery import embedded_celery_problem

        problem = embedded_celery_problem()
        if problem is not None:
            raise RuntimeError(problem)
        return
    from cxplatform.celery import app

    with app.connection_for_write() as conn:
        # One attempt, bounded: a health check must answer quickly, not wait out the broker's retry policy.
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_CONNECT_TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], None]] = {
    "postgres": check_postgres,
    "clickhouse": check_clickhouse,
    "broker": check_broker,
}


def health_report() -> dict[str, str]:
    """``{service: "ok" | "down: <reason>"}`` for every backing service."""
    report = {}
    for name, check in CHECKS.items():
        try:
            check()
            report[name] = "ok"
        except Exception as exc:  # any failure means "down"; the message says why
            message = " ".join(str(exc).split())  # driver messages span lines
            report[name] = f"down: {type(exc).__name__}: {message}"[:500]
    return report


def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    healthy = all(value == "ok" for value in report.values())
    return JsonResponse({"status": "ok" if healthy else "down", "services": report}, status=200 if healthy else 503)


class HealthzMiddleware:
    """Serves ``/healthz`` on any host, ahead of tenant resolution (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == HEALTHZ_PATH:
            return healthz(request)
        return self.get_response(request)
