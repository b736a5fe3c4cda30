import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from analytics.clickhouse.client import get_client, reset_clients
from analytics.clickhouse.migrator import migrate, migrations_applied, migrations_available


def test_every_migration_is_applied_and_a_rerun_applies_nothing(db):
    names = {m.name for m in migrations_available()}
    assert names and names <= migrations_applied()
    assert migrate(log=lambda message: None) == []
    tables = {row[0] for row in get_client().query("SHOW TABLES").result_rows}
    assert "tenant_settings" in tables


def test_migrations_are_numbered_and_ordered():
    names = [m.name for m in migrations_available()]
    assert names == sorted(names)
    assert all(name[:4].isdigit() for name in names)
    assert len({name[:4] for name in names}) == len(names), "two migrations share a number"


def test_list_marks_applied_migrations(db, capsys):
    call_command("migrate_clickhouse", "--list")
    out = capsys.readouterr().out
    for migration in migrations_available():
        assert f"[X] {migration.name}" in out


def test_a_fresh_database_gets_the_whole_schema(db, settings):
    settings.CLICKHOUSE_DATABASE = "test_cx_fresh"
    reset_clients()
    try:
        applied = migrate(log=lambda message: None)
        assert applied == [m.name for m in migrations_available()]
    finally:
        get_client().command("DROP DATABASE IF EXISTS test_cx_fresh")
        reset_clients()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://user:s3cret@127.0.0.1:9"])
def test_unreachable_clickhouse_is_a_clear_command_error(db, url):
    reset_clients()
    try:
        with override_settings(CLICKHOUSE_URL=url), pytest.raises(CommandError) as exc:
            call_command("migrate_clickhouse")
        message = str(exc.value)
        assert "ClickHouse at http://" in message and "127.0.0.1:9 is unreachable" in message
        assert "s3cret" not in message
    finally:
        reset_clients()
