"""Versioned ClickHouse schema migrations: numbered modules in ``migrations/`` holding ``operations``."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

from analytics.clickhouse import migrations as migrations_package
from analytics.clickhouse.client import get_client
from analytics.clickhouse.sql import MIGRATIONS_TABLE, MIGRATIONS_TABLE_SQL

_MIGRATION_NAME = re.compile(r"^\d{4}_[a-z0-9_]+$")


@dataclass(frozen=True)
class Migration:
    name: str
    operations: list[str]


def migrations_available() -> list[Migration]:
    names = sorted(m.name for m in pkgutil.iter_modules(migrations_package.__path__) if _MIGRATION_NAME.match(m.name))
    found = []
    for name in names:
        module = importlib.import_module(f"{migrations_package.__name__}.{name}")
        found.append(Migration(name=name, operations=list(module.operations)))
    return found


def migrations_applied() -> set[str]:
    client = get_client()
    client.command(MIGRATIONS_TABLE_SQL())
    return {row[0] for row in client.query(f"SELECT name FROM {MIGRATIONS_TABLE}").result_rows}


def migrate(*, log=print) -> list[str]:
    """Apply pending migrations in order; return their names. Operations are idempotent DDL."""
    client = get_client()
    applied = migrations_applied()
    done = []
    for migration in migrations_available():
        if migration.name in applied:
            continue
        log(f"Applying ClickHouse migration {migration.name}…")
        for statement in migration.operations:
            client.command(statement)
        client.insert(MIGRATIONS_TABLE, [[migration.name]], column_names=["name"])
        done.append(migration.name)
    return done
