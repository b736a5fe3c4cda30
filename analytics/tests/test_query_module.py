"""The tenant-scoped query module: the only door to ClickHouse tenant data."""

import pytest
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import TenantScopeError, tenant_insert, tenant_query, tenant_query_arrow
from analytics.services import tenant_settings_publish

SETTINGS_OF_TENANT = "SELECT timezone, currency FROM tenant_settings FINAL WHERE tenant_id = {tenant_id:UInt32}"


def test_query_binds_the_tenant_of_the_current_context(make_tenant):
    a = make_tenant(timezone="Europe/Moscow", currency="RUB")
    b = make_tenant(timezone="Asia/Yekaterinburg", currency="KZT")
    with tenant_context(a):
        assert tenant_query(SETTINGS_OF_TENANT).result_rows == [("Europe/Moscow", "RUB")]
    with tenant_context(b):
        assert tenant_query(SETTINGS_OF_TENANT).result_rows == [("Asia/Yekaterinburg", "KZT")]


def test_explicit_tenant_id_is_bound_too(make_tenant):
    a = make_tenant(currency="EUR")
    assert tenant_query(SETTINGS_OF_TENANT, tenant_id=a.pk).result_rows == [("Europe/Moscow", "EUR")]


def test_refuses_a_query_without_an_active_tenant(db):
    with pytest.raises(TenantScopeError, match="No tenant is active"):
        tenant_query(SETTINGS_OF_TENANT)


@pytest.mark.parametrize("bad_id", [0, -1, "1", True, 1.0])
def test_refuses_an_invalid_tenant_id(db, bad_id):
    with pytest.raises(TenantScopeError, match="Invalid tenant id"):
        tenant_query(SETTINGS_OF_TENANT, tenant_id=bad_id)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM tenant_settings",
        "SELECT count() FROM tenant_settings WHERE tenant_id = {tid:UInt32}",
        "SELECT count() FROM tenant_settings WHERE tenant_id = 1 OR tenant_id = {tenant_id:UInt32}",
        "SELECT count() FROM tenant_settings WHERE tenant_id IN (1, 2) OR tenant_id = {tenant_id:UInt32}",
    ],
)
def test_refuses_statements_not_scoped_by_the_bound_tenant(tenant, sql):
    with pytest.raises(TenantScopeError):
        tenant_query(sql, tenant_id=tenant.pk)


def test_refuses_a_caller_supplied_tenant_id_parameter(tenant):
    with pytest.raises(TenantScopeError, match="bound by the query module"):
        tenant_query(SETTINGS_OF_TENANT, {"tenant_id": tenant.pk + 1}, tenant_id=tenant.pk)


def test_user_values_are_bound_not_interpolated(tenant):
    # A classic injection string is compared as a value: no error, no rows of anybody else.
    sql = SETTINGS_OF_TENANT + " AND currency = {currency:String}"
    rows = tenant_query(sql, {"currency": "RUB' OR 1=1 --"}, tenant_id=tenant.pk).result_rows
    assert rows == []
    assert tenant_query(sql, {"currency": "RUB"}, tenant_id=tenant.pk).result_rows == [("Europe/Moscow", "RUB")]


def test_insert_prepends_the_tenant_and_refuses_a_tenant_column(make_tenant):
    a, b = make_tenant(), make_tenant()
    with tenant_context(a):
        written = tenant_insert(
            "tenant_settings",
            [["UTC", "USD", 30, 7, 2**62]],
            ["timezone", "currency", "churn_window_days", "attribution_window_days", "version"],
        )
    assert written == 1
    assert tenant_query(SETTINGS_OF_TENANT, tenant_id=a.pk).result_rows == [("UTC", "USD")]
    assert tenant_query(SETTINGS_OF_TENANT, tenant_id=b.pk).result_rows == [("Europe/Moscow", "RUB")]
    with pytest.raises(TenantScopeError, match="set by the query module"):
        tenant_insert("tenant_settings", [[b.pk, "UTC"]], ["tenant_id", "timezone"], tenant_id=a.pk)


def test_latest_settings_version_wins(tenant):
    tenant.timezone = "Europe/Kaliningrad"
    tenant.save()
    tenant_settings_publish(tenant=tenant)
    assert tenant_query(SETTINGS_OF_TENANT, tenant_id=tenant.pk).result_rows == [("Europe/Kaliningrad", "RUB")]


def test_command_deletes_only_the_bound_tenants_rows(make_tenant):
    from analytics.clickhouse.query import tenant_command

    a, b = make_tenant(), make_tenant()
    delete = "DELETE FROM tenant_settings WHERE tenant_id = {tenant_id:UInt32} AND currency = {currency:String}"
    tenant_command(delete, {"currency": "RUB"}, tenant_id=a.pk)
    assert tenant_query(SETTINGS_OF_TENANT, tenant_id=a.pk).result_rows == []
    assert tenant_query(SETTINGS_OF_TENANT, tenant_id=b.pk).result_rows == [("Europe/Moscow", "RUB")]
    with pytest.raises(TenantScopeError):
        tenant_command("DELETE FROM tenant_settings WHERE currency = 'RUB'", tenant_id=a.pk)


def test_arrow_answers_bind_the_tenant_and_refuse_the_same_statements(make_tenant):
    a = make_tenant(timezone="Europe/Moscow", currency="RUB")
    b = make_tenant(timezone="Asia/Yekaterinburg", currency="KZT")
    with tenant_context(a):
        assert tenant_query_arrow(SETTINGS_OF_TENANT).to_pylist() == [{"timezone": "Europe/Moscow", "currency": "RUB"}]
    answer = tenant_query_arrow(SETTINGS_OF_TENANT, tenant_id=b.pk).to_pylist()
    assert answer == [{"timezone": "Asia/Yekaterinburg", "currency": "KZT"}]
    with pytest.raises(TenantScopeError):
        tenant_query_arrow("SELECT count() FROM tenant_settings", tenant_id=a.pk)
    with pytest.raises(TenantScopeError, match="bound by the query module"):
        tenant_query_arrow(SETTINGS_OF_TENANT, {"tenant_id": b.pk}, tenant_id=a.pk)
