"""Celery worker and beat as threads of the web process, for the embedded mode (no REDIS_URL).

chdb lets only one process open a data directory, so without Redis the web server, the
worker and beat share one process and talk over kombu's in-memory transport. Messages
live in this process's memory: whatever is still queued when it exits is lost, which is
fine for development and the demo and never for production (set REDIS_URL).

The worker is a bare ``WorkController`` in a thread, as in ``celery.contrib.testing.worker``:
unlike the ``celery worker`` program it installs no signal handlers, which only the main
thread may do. It is built inside its thread, because Celery's Django fix-up closes the
database connections of the thread that sends ``worker_init`` (the caller's could be in a
transaction).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from celery.beat import EmbeddedService
from celery.bootsteps import RUN
from celery.worker import WorkController, state
from django.conf import settings

from cxplatform.celery import app
from cxplatform.queues import CeleryQueue

logger = logging.getLogger(__name__)

# The worker's synchronous loop (memory transport) looks at the stop flag every 2 s; beat ticks every second.
STOP_TIMEOUT_SECONDS = 30


class _WorkerThread(threading.Thread):
    def __init__(self, *, concurrency: int) -> None:
        super().__init__(name="celery-worker", daemon=True)
        self.concurrency = concurrency
        self.consumer_ready = threading.Event()
        self.controller: WorkController | None = None

    def run(self) -> None:
        self.controller = WorkController(
            app=app,
            pool="threads",
            concurrency=self.concurrency,
            queues=[queue.value for queue in CeleryQueue],
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            ready_callback=lambda consumer: self.consumer_ready.set(),
        )
        self.controller.start()

    @property
    def running(self) -> bool:
        return self.is_alive() and self.controller is not None and self.controller.blueprint.state == RUN


@dataclass(frozen=True)
class _Services:
    worker: _WorkerThread
    beat: threading.Thread


_lock = threading.Lock()
_services: _Services | None = None


def start_embedded_celery(
    *, concurrency: int = 2, schedule_filename: Path | None = None, ready_timeout: float = 30
) -> None:
    """Start the worker and beat threads (once per process) and wait until the worker consumes.

    ``schedule_filename`` is where beat keeps its last-run times (default ``VAR_DIR/celerybeat-schedule``).
    """
    global _services
    if not settings.CELERY_EMBEDDED:
        raise RuntimeError("REDIS_URL is set: run `celery -A cxplatform worker` and `beat` as separate processes.")
    with _lock:
        if _services is not None:
            return
        worker = _WorkerThread(concurrency=concurrency)
        beat = EmbeddedService(
            app, thread=True, schedule_filename=str(schedule_filename or settings.VAR_DIR / "celerybeat-schedule")
        )
        beat.name = "celery-beat"
        worker.start()
        deadline = time.monotonic() + ready_timeout
        while not worker.consumer_ready.wait(0.05):
            if not worker.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The embedded Celery worker did not start; its error is in the log above.")
        beat.start()
        _services = _Services(worker=worker, beat=beat)
    logger.info("Embedded Celery worker and beat started (memory transport).")


def stop_embedded_celery() -> None:
    """Stop beat and the worker (warm: running tasks finish). For tests; a serving process just exits."""
    global _services
    with _lock:
        if _services is None:
            return
        # Not beat.stop(): it waits for a flag that a beat thread which crashed never sets.
        _services.beat.service.stop()
        # What the `celery worker` program's SIGTERM handler does: the consumer loop raises WorkerShutdown on it.
        state.should_stop = 0
        try:
            _services.beat.join(STOP_TIMEOUT_SECONDS)  # beat saves its schedule on the way out
            _services.worker.join(STOP_TIMEOUT_SECONDS)
        finally:
            state.should_stop = None
        if _services.worker.is_alive() or _services.beat.is_alive():
            raise RuntimeError(f"The embedded Celery threads did not stop within {STOP_TIMEOUT_SECONDS} s.")
        _services = None


def embedded_celery_problem() -> str | None:
    """Why tasks sent from this process would not run, or None when the embedded worker and beat are running."""
    if _services is None:
        return (
            "no Celery worker in this process: without REDIS_URL tasks are queued in memory and only "
            "`manage.py serve` runs a worker on them (or set REDIS_URL and run `celery worker` and `beat`)"
        )
    alive = {"worker": _services.worker.running, "beat": _services.beat.is_alive()}
    stopped = [name for name, is_alive in alive.items() if not is_alive]
    return f"embedded Celery {' and '.join(stopped)} stopped" if stopped else None
