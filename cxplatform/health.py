"""``/healthz``: is each backing service reachable? Says which one is down (HTTP 503 if any)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


def check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_clickhouse() -> None:
    from analytics.clickhouse.client import get_client

    get_client().command("SELECT 1")


def check_broker() -> None:
    if settings.CELERY_EMBEDDED:
        from cxplatform.embedded_celery import embedded_celery_status

        status = embedded_celery_status()
        if status is not None:  # None: this process runs no embedded worker (manage.py, tests)
            raise RuntimeError(status)
        return
    from cxplatform.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


CHECKS: dict[str, Callable[[], None]] = {
    "postgres": check_postgres,
    "clickhouse": check_clickhouse,
    "broker": check_broker,
}


def health_report() -> dict[str, str]:
    report = {}
    for name, check in CHECKS.items():
        try:
            check()
            report[name] = "ok"
        except Exception as exc:  # any failure means "down"; the message says why
            report[name] = f"down: {type(exc).__name__}: {exc}".strip()[:500]
    return report


def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    healthy = all(value == "ok" for value in report.values())
    return JsonResponse({"status": "ok" if healthy else "down", "services": report}, status=200 if healthy else 503)
