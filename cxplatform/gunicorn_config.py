"""gunicorn settings of the production image (docker-compose's ``web``), overridable from the environment."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# Threads keep a worker responsive while one request waits on a long ClickHouse query.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
accesslog = "-"


def on_starting(server) -> None:
    """Refuse the embedded services: chdb allows one process per data directory, and without Redis
    tasks would queue in memory of a process that runs no worker. gunicorn runs several processes."""
    missing = [name for name in ("CLICKHOUSE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        raise SystemExit(
            f"gunicorn needs real services; set {' and '.join(missing)}, "
            "or serve the embedded ones with `python manage.py serve`."
        )
