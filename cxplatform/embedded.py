"""Embedded services for a machine with nothing installed but Python (DESIGN §3).

Unset ``DATABASE_URL`` means a real Postgres from the ``pgserver`` package under
``var/pg``; unset ``CLICKHOUSE_URL`` means chdb (in-process ClickHouse) under
``var/clickhouse``. Production sets both.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

EMBEDDED_DATABASE_NAME = "cxplatform"

# pgserver stops its server when the last process holding a handle exits; the
# handle must live as long as this process does.
_pg_server = None


def embedded_postgres_settings(data_dir: Path) -> dict:
    """Start (or reuse) the pgserver Postgres in ``data_dir``; return Django DATABASES['default']."""
    global _pg_server
    import warnings

    import psycopg

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI)
        warnings.simplefilter("ignore")
        import pgserver

        _pg_server = pgserver.get_server(data_dir, cleanup_mode="stop")
    socket_dir = parse_qs(urlparse(_pg_server.get_uri()).query)["host"][0]
    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [EMBEDDED_DATABASE_NAME]).fetchone():
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE_NAME}"')
    return {"NAME": EMBEDDED_DATABASE_NAME, "USER": "postgres", "HOST": socket_dir, "PASSWORD": "", "PORT": ""}


def embedded_clickhouse_dsn(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"chdb://{data_dir}"
