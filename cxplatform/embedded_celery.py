"""Celery worker and beat as threads of the web process, for the embedded mode (no REDIS_URL).

chdb lets only one process open a data directory, so without Redis the web server,
the worker and beat share one process and talk over kombu's in-memory transport.
"""

from __future__ import annotations

import logging
import threading

from celery.beat import EmbeddedService
from celery.worker import WorkController
from django.conf import settings

from cxplatform.celery import app
from cxplatform.queues import CeleryQueue

logger = logging.getLogger(__name__)

_threads: dict[str, threading.Thread] = {}


def start_embedded_celery(*, concurrency: int = 2) -> None:
    """Start the worker and beat threads once per process."""
    if not settings.CELERY_EMBEDDED:
        raise RuntimeError("REDIS_URL is set: run `celery -A cxplatform worker` and `beat` as separate processes.")
    if _threads:
        return
    worker = WorkController(
        app=app,
        pool="threads",
        concurrency=concurrency,
        queues=[q.value for q in CeleryQueue],
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="INFO",
    )
    _threads["worker"] = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    beat = EmbeddedService(app, thread=True, schedule_filename=str(settings.VAR_DIR / "celerybeat-schedule"))
    beat.name = "celery-beat"
    beat.daemon = True
    _threads["beat"] = beat
    for thread in _threads.values():
        thread.start()
    logger.info("Embedded Celery worker and beat started (memory transport).")


def embedded_celery_status() -> str | None:
    """None when healthy or not started in this process; otherwise which thread has died."""
    dead = [name for name, thread in _threads.items() if not thread.is_alive()]
    return f"embedded Celery {' and '.join(dead)} stopped" if dead else None
