"""Peers: medians of the other tenants' KPIs against pandas, the minimum of five, and who may ask."""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.analyses.base import InsufficientDataError, analysis_run
from analytics.analyses.peers import KPIS
from analytics.serialization import to_jsonable
from analytics.tests.reference_metrics import facts_load, reference_query

FIRST, LAST = date(2025, 1, 1), date(2025, 6, 30)
PERIOD = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
VLADIVOSTOK = "Asia/Vladivostok"
MONEY_KPIS = ("revenue_per_buyer", "average_check")


def reference_kpis(tenant) -> dict:
    """The tenant's KPIs recomputed with pandas from its own facts (each in its own timezone)."""
    return reference_query(facts_load(tenant), KPIS, FIRST, LAST).totals


def pandas_median(values: list, kpi: str):
    middle = Decimal(str(pd.Series([float(value) for value in values]).median()))
    middle = middle.quantize(Decimal("0.01"), ROUND_HALF_UP)
    return middle if kpi in MONEY_KPIS else float(middle)


def peers_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("peers", params, staff=True)


def test_peers_are_the_median_of_at_least_five_other_tenants_with_data(generated_tenant, make_tenant):
    timezones = ("Europe/Moscow", VLADIVOSTOK, "Europe/Moscow", "Asia/Yekaterinburg", "Europe/Moscow")
    tenants = [generated_tenant(customers=150, seed=seed, timezone=tz) for seed, tz in enumerate(timezones, start=11)]
    empty = make_tenant()  # no data: does not count
    asking = tenants[0]
    with pytest.raises(InsufficientDataError, match=r"at least 5 other workspaces .* there are 4"):
        peers_of(asking, **PERIOD)

    tenants.append(generated_tenant(customers=150, seed=16))
    kpis = {tenant.pk: reference_kpis(tenant) for tenant in tenants}
    result = peers_of(asking, **PERIOD)
    assert result["period"] == PERIOD
    assert result["peers"] == 5
    assert [row["kpi"] for row in result["kpis"]] == list(KPIS)
    for row in result["kpis"]:
        kpi = row["kpi"]
        others = [kpis[tenant.pk][kpi] for tenant in tenants[1:]]
        assert row["peer_median"] == pandas_median(others, kpi), kpi
        assert row["value"] == kpis[asking.pk][kpi], kpi
        difference = (Decimal(str(row["value"])) / Decimal(str(row["peer_median"])) - 1) * 100
        assert row["difference_pct"] == difference.quantize(Decimal("0.01"), ROUND_HALF_UP), kpi
    # Five others with different seeds: not every median is the asking tenant's own value.
    assert any(row["value"] != row["peer_median"] for row in result["kpis"])

    # Nothing names the others; the answer for the empty workspace has six peers and no values of its own.
    text = json.dumps(to_jsonable(result), ensure_ascii=False)
    for other in (*tenants[1:], empty):
        assert other.slug not in text
        assert other.name not in text
        assert str(other.schema_name) not in text
    from_empty = peers_of(empty, **PERIOD)
    assert from_empty["peers"] == 6
    assert all(row["value"] is None and row["difference_pct"] is None for row in from_empty["kpis"])
    for row in from_empty["kpis"]:
        assert row["peer_median"] == pandas_median([kpis[t.pk][row["kpi"]] for t in tenants], row["kpi"])


def test_peers_run_from_the_command_but_are_refused_by_the_tenant_api(
    generated_tenant, make_tenant, make_user, logged_in_client
):
    tenant = make_tenant()
    with pytest.raises(CommandError, match="there are 0") as error:
        call_command("analysis", "peers", "--tenant", tenant.slug, "--param=from=2025-01-01", stdout=StringIO())
    assert error.value.returncode == 2
    for seed in range(21, 26):
        generated_tenant(customers=150, seed=seed)
    out = StringIO()
    call_command(
        "analysis", "peers", "--tenant", tenant.slug, "--param=from=2025-01-01", "--param=to=2025-06-30", stdout=out
    )
    assert json.loads(out.getvalue()) == to_jsonable(peers_of(tenant, **PERIOD))
    assert json.loads(out.getvalue())["peers"] == 5
    for params, message in (({"from": "2025-13-01"}, "from"), ({"peer": "x"}, "Unknown parameter")):
        pairs = [f"--param={name}={value}" for name, value in params.items()]
        with pytest.raises(CommandError, match=message):
            call_command("analysis", "peers", "--tenant", tenant.slug, *pairs, stdout=StringIO())

    client = logged_in_client(tenant, make_user(tenant, "owner"))
    response = client.get("/api/v1/analyses/peers", PERIOD)
    assert response.status_code == 400
    assert "Unknown analysis" in response.json()["message"]
    listed = client.get("/api/v1/analyses/")
    assert listed.status_code == 200
    assert "peers" not in {analysis["name"] for analysis in listed.json()}
