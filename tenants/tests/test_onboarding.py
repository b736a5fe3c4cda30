"""Onboarding a client by service and by command: all or nothing, clear errors."""

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from analytics.clickhouse.client import ClickHouseUnavailableError, reset_clients
from analytics.clickhouse.query import tenant_query
from tenants.accounts.models import AuditLogEntry, Invitation
from tenants.errors import ApplicationError
from tenants.models import Domain, Tenant
from tenants.services import tenant_onboard


def schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])
        return cursor.fetchone() is not None


def test_onboarding_creates_schema_domain_invitation_and_clickhouse_row(db):
    result = tenant_onboard(
        slug="flower-shop",
        name="Flower Shop",
        owner_email=" Owner@Flower.Test ",
        timezone="Asia/Novosibirsk",
        currency="rub",
        locale="en",
        primary_color="#AA3300",
        theme="dark",
    )
    tenant = Tenant.objects.get(slug="flower-shop")
    assert (
        tenant.schema_name,
        tenant.timezone,
        tenant.currency,
        tenant.locale,
        tenant.theme,
        tenant.primary_color,
    ) == (
        "t_flower_shop",
        "Asia/Novosibirsk",
        "RUB",
        "en",
        "dark",
        "#aa3300",
    )
    assert schema_exists("t_flower_shop")
    assert Domain.objects.get(tenant=tenant).domain == "flower-shop.localhost"
    with tenant_context(tenant):
        invitation = Invitation.objects.get()
        assert (invitation.email, invitation.role, invitation.accepted_at) == ("owner@flower.test", "owner", None)
    rows = tenant_query(
        "SELECT timezone FROM tenant_settings WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
    )
    assert rows.result_rows == [("Asia/Novosibirsk",)]
    assert result.owner_invitation_link.startswith("http://flower-shop.localhost:8000/invite/")
    assert len(mail.outbox) == 1 and result.owner_invitation_link in mail.outbox[0].body
    assert AuditLogEntry.objects.filter(action="tenant_onboarded", target="flower-shop").exists()


@pytest.mark.parametrize(
    ("field", "overrides", "message"),
    [
        ("slug", {"slug": "Bad Slug"}, "not a valid slug"),
        ("slug", {"slug": "ab"}, "not a valid slug"),
        ("slug", {"slug": "ends-"}, "not a valid slug"),
        ("slug", {"slug": "under_score"}, "not a valid slug"),
        ("slug", {"slug": "admin"}, "reserved"),
        ("timezone", {"timezone": "Mars/Olympus"}, "not a known time zone"),
        ("owner_email", {"owner_email": "not-an-email"}, "not a valid e-mail"),
        ("currency", {"currency": "RUR"}, "ISO 4217"),
        ("locale", {"locale": "de"}, "Locale must be one of"),
        ("primary_color", {"primary_color": "red"}, "Colour must look like"),
        ("name", {"name": "   "}, "Give the client a name"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_creates_nothing(db, field, overrides, message):
    args = {"slug": "good-slug", "name": "Good", "owner_email": "o@good.test", **overrides}
    with pytest.raises(ApplicationError) as exc:
        tenant_onboard(**args)
    assert message in exc.value.extra["errors"][field]
    assert not Tenant.objects.exclude(schema_name="public").exists()
    assert not schema_exists("t_good_slug") and not schema_exists("t_" + args["slug"].replace("-", "_"))
    assert not mail.outbox


def test_a_taken_slug_is_refused(make_tenant):
    make_tenant("taken")
    with pytest.raises(ApplicationError, match="already taken"):
        tenant_onboard(slug="taken", name="Other", owner_email="x@y.test")
    assert Tenant.objects.filter(slug="taken").count() == 1


def test_unreachable_clickhouse_refuses_before_anything_is_created(db):
    reset_clients()
    try:
        with override_settings(CLICKHOUSE_URL="http://127.0.0.1:9"), pytest.raises(ApplicationError) as exc:
            tenant_onboard(slug="no-clickhouse", name="No CH", owner_email="o@x.test")
    finally:
        reset_clients()
    assert "ClickHouse at http://127.0.0.1:9 is unreachable" in exc.value.message
    assert not Tenant.objects.filter(slug="no-clickhouse").exists()
    assert not schema_exists("t_no_clickhouse")


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_schema_exists_rolls_everything_back(monkeypatch, public_tenant):
    """Committed for real (no test transaction): the schema, rows and invitation must all vanish."""

    def clickhouse_fails_mid_onboarding(*, tenant):
        assert schema_exists(tenant.schema_name)  # the failure really happens after the DDL
        raise ClickHouseUnavailableError("ClickHouse at test is unreachable: connection reset")

    monkeypatch.setattr("tenants.services.tenant_settings_publish", clickhouse_fails_mid_onboarding)
    with pytest.raises(ApplicationError, match="connection reset"):
        tenant_onboard(slug="half-made", name="Half", owner_email="o@half.test")
    assert not schema_exists("t_half_made")
    assert not Tenant.objects.filter(slug="half-made").exists()
    assert not Domain.objects.filter(domain="half-made.localhost").exists()
    assert not AuditLogEntry.objects.filter(target="half-made").exists()
    assert not mail.outbox


def test_command_onboards_and_is_idempotent(db, capsys):
    call_command("onboard_tenant", "cmd-shop", name="Cmd Shop", owner_email="boss@cmd.test", timezone="Europe/Samara")
    out = capsys.readouterr().out
    assert "Onboarded “Cmd Shop” (cmd-shop)" in out and "http://cmd-shop.localhost:8000/invite/" in out
    tenant = Tenant.objects.get(slug="cmd-shop")
    assert tenant.timezone == "Europe/Samara" and tenant.currency == "RUB"

    call_command("onboard_tenant", "cmd-shop", name="Cmd Shop", owner_email="BOSS@cmd.test")
    assert "already onboarded; nothing to do" in capsys.readouterr().out
    assert Tenant.objects.filter(slug="cmd-shop").count() == 1
    with tenant_context(tenant):
        assert Invitation.objects.count() == 1

    with pytest.raises(CommandError, match="already taken by “Cmd Shop”"):
        call_command("onboard_tenant", "cmd-shop", name="Someone Else", owner_email="boss@cmd.test")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Slug", "--name", "X", "--owner-email", "o@x.test"], "not a valid slug"),
        (["ok-slug", "--name", "X", "--owner-email", "nope"], "not a valid e-mail"),
        (["ok-slug", "--name", "X", "--owner-email", "o@x.test", "--timezone", "Moscow"], "not a known time zone"),
        (["ok-slug", "--name", "X", "--owner-email", "o@x.test", "--currency", "RUBLES"], "ISO 4217"),
    ],
)
def test_command_bad_input_is_a_clear_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("onboard_tenant", *args)
    assert not Tenant.objects.exclude(schema_name="public").exists()
