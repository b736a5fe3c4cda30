"""The semantic layer's doors: POST /api/v1/query, GET /api/v1/metrics and ``manage.py query`` answer alike;
bad input is refused with what is valid; answers are cached per tenant until that tenant's data changes;
a tenant sees only its own rows."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation
from django_tenants.utils import tenant_context

from analytics import selectors
from analytics.selectors import metrics_query
from analytics.semantic.catalog import applicable_dimensions
from analytics.semantic.dimensions import DIMENSIONS
from analytics.semantic.metrics import METRICS
from analytics.semantic.spec import query_parse
from analytics.serialization import to_jsonable
from analytics.tests.reference_metrics import facts_load, reference_query
from integrations.ingest import SalesLine, sales_lines_write
from tenants.accounts.services import api_token_create

QUERY = {
    "metrics": ["revenue", "orders", "average_check", "new_customers"],
    "dimensions": ["store"],
    "filters": [{"dimension": "channel", "values": ["online"], "exclude": True}],
    "from": "2025-04-01",
    "to": "2025-06-30",
    "granularity": "month",
    "compare": "previous_year",
}
COMMAND_ARGS = [
    "--metrics=revenue,orders,average_check,new_customers",
    "--dimensions=store",
    "--filter=channel!=online",
    "--from=2025-04-01",
    "--to=2025-06-30",
    "--granularity=month",
    "--compare=previous_year",
]


def post(client: Any, body: Any, **headers: Any) -> Any:
    return client.post("/api/v1/query", json.dumps(body), content_type="application/json", **headers)


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("query", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def shop(generated_tenant):
    return generated_tenant(customers=60)


@pytest.fixture
def analyst(shop, make_user, logged_in_client):
    return logged_in_client(shop, make_user(shop, "analyst"))


def test_the_api_and_the_command_give_the_same_answer(shop, analyst):
    response = post(analyst, QUERY)
    assert response.status_code == 200
    answer = response.json()
    assert answer == json.loads(run_command(f"--tenant={shop.slug}", *COMMAND_ARGS))
    with tenant_context(shop):
        assert answer == to_jsonable(metrics_query(query_parse(QUERY)))
    assert [row["bucket"] for row in answer["rows"]][:1] == ["2025-04-01"]
    assert {row["dimensions"]["store"] for row in answer["rows"]} == {
        row["dimensions"]["store"] for row in answer["rows"] if row["values"]["orders"]
    }
    assert answer["comparison"] == {"type": "previous_year", "from": "2024-04-01", "to": "2024-06-30"}
    assert answer["totals"]["values"]["revenue"] == str(Decimal(answer["totals"]["values"]["revenue"]))  # exact money


def test_the_command_writes_csv_with_the_comparison_columns(shop):
    lines = list(csv.reader(StringIO(run_command(f"--tenant={shop.slug}", *COMMAND_ARGS, "--format=csv"))))
    with tenant_context(shop):
        answer = to_jsonable(metrics_query(query_parse(QUERY)))
    header = ["bucket", "store"]
    for metric in QUERY["metrics"]:
        header += [metric, f"{metric}_previous", f"{metric}_change_pct"]
    assert lines[0] == header
    assert len(lines) == 1 + len(answer["rows"]) + 1  # rows, then the total
    first = answer["rows"][0]
    assert lines[1][:4] == [
        first["bucket"],
        first["dimensions"]["store"],
        first["values"]["revenue"],
        first["previous"]["revenue"],
    ]
    assert lines[-1][0] == "total"
    assert lines[-1][2] == answer["totals"]["values"]["revenue"]


def test_a_token_with_the_metrics_scope_queries_its_own_tenant_only(shop, make_tenant, tenant_client):
    other = make_tenant()
    with tenant_context(shop):
        _token, raw = api_token_create(name="BI", scopes=["metrics:read"])
        _token, events_only = api_token_create(name="Shop", scopes=["events:write"])
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert post(tenant_client(shop), QUERY, **bearer).status_code == 200
    assert post(tenant_client(other), QUERY, **bearer).status_code in (401, 403)
    assert post(tenant_client(shop), QUERY, HTTP_AUTHORIZATION=f"Bearer {events_only}").status_code == 403
    assert post(tenant_client(shop), QUERY).status_code in (401, 403)


def test_the_catalog_lists_every_metric_with_label_unit_and_formula(shop, analyst):
    printed = json.loads(run_command("--catalog"))
    assert printed == analyst.get("/api/v1/metrics").json()
    by_id = {metric["id"]: metric for metric in printed["metrics"]}
    assert list(by_id) == [metric.id for metric in METRICS]
    for metric in METRICS:
        entry = by_id[metric.id]
        assert (entry["label"], entry["unit"], entry["formula"]) == (
            str(metric.label),
            metric.unit.value,
            metric.formula,
        )
        assert entry["formula"] and entry["label"]
        assert entry["dimensions"] == list(applicable_dimensions(metric.id))
    assert [dimension["id"] for dimension in printed["dimensions"]] == [dimension.id for dimension in DIMENSIONS]
    assert all(dimension["label"] and dimension["description"] for dimension in printed["dimensions"])
    assert by_id["average_check"]["ratio_of"] == ["revenue", "orders"]


def test_dimensions_apply_to_the_facts_they_describe():
    assert {"store", "city", "acquisition_cohort"} <= set(applicable_dimensions("new_customers"))
    assert {"store", "weekday", "hour", "customer_type", "city"} <= set(applicable_dimensions("revenue"))
    assert {"mailing", "weekday", "city"} <= set(applicable_dimensions("sends"))
    assert "store" not in applicable_dimensions("sends")
    assert "weekday" not in applicable_dimensions("customer_base")
    assert set(applicable_dimensions("contacts")) == {
        "city",
        "gender",
        "age_band",
        "home_store",
        "loyalty_program",
        "acquisition_cohort",
        "rfm_segment",
        "segment",
    }
    # A ratio over two sources takes the dimensions both apply to.
    assert set(applicable_dimensions("revenue_per_email")) == set(applicable_dimensions("sends")) & set(
        applicable_dimensions("mailing_revenue")
    )


ALL_METRIC_IDS = ", ".join(metric.id for metric in METRICS)
BAD_QUERIES = [
    ({"metrics": ["profit"]}, f"Unknown metric: profit. Valid: {ALL_METRIC_IDS}."),
    ({"metrics": []}, "Name at least one metric."),
    ({"dimensions": ["colour"]}, "Unknown dimension: colour. Valid: store, employee,"),
    (
        {"metrics": ["sends"], "dimensions": ["store"]},
        "Dimension “store” does not apply to metric “sends”. Valid: weekday, hour, city,",
    ),
    (
        {"metrics": ["contacts"], "filters": [{"dimension": "weekday", "values": ["1"]}]},
        "Dimension “weekday” does not apply to metric “contacts”. Valid: city, gender, age_band,",
    ),
    ({"from": "2025-13-01"}, "“2025-13-01” is not a date for “from”: use YYYY-MM-DD."),
    ({"from": "2025-06-30", "to": "2025-04-01"}, "The period ends (2025-04-01) before it starts (2025-06-30)."),
    ({"to": ""}, "Give the period: “from” and “to” dates (YYYY-MM-DD)."),
    ({"granularity": "fortnight"}, "Unknown granularity “fortnight”. Valid: day, week, month, quarter, year."),
    ({"compare": "last_week"}, "Unknown compare “last_week”. Valid: previous_period, previous_year."),
    ({"limit": 0}, "“limit” must be a number from 1 to 50000."),
    ({"dimensions": ["store", "city", "channel", "brand"]}, "At most 3 dimensions in one query."),
    ({"filters": [{"dimension": "store"}]}, "Filter on “store” needs a non-empty list of values."),
]


@pytest.mark.parametrize(("change", "message"), BAD_QUERIES)
def test_bad_input_is_a_400_and_exit_code_2_saying_what_is_valid(shop, analyst, change, message):
    body = {"metrics": ["revenue"], "from": "2025-04-01", "to": "2025-06-30", **change}
    response = post(analyst, body)
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)
    arguments = [f"--tenant={shop.slug}", f"--metrics={','.join(body['metrics'])}"]
    arguments += [f"--from={body['from']}", f"--to={body['to']}"]
    arguments += [f"--dimensions={','.join(body['dimensions'])}"] if "dimensions" in body else []
    arguments += [f"--granularity={body['granularity']}"] if "granularity" in body else []
    arguments += [f"--compare={body['compare']}"] if "compare" in body else []
    arguments += [f"--limit={body['limit']}"] if "limit" in body else []
    for condition in body.get("filters", []):
        arguments += [f"--filter={condition['dimension']}={value}" for value in condition.get("values", [])]
    if "filters" in change and not change["filters"][0].get("values"):
        return  # the command's --filter always carries a value
    with pytest.raises(CommandError) as error:
        run_command(*arguments)
    assert error.value.returncode == 2
    assert str(error.value).startswith(message)


def test_the_api_lists_the_valid_ids_in_the_error(analyst):
    unknown = post(analyst, {"metrics": ["revenue", "profit"], "from": "2025-01-01", "to": "2025-01-31"}).json()
    assert unknown["extra"] == {"unknown": ["profit"], "valid": [metric.id for metric in METRICS]}
    wrong = post(analyst, {"metrics": ["sends"], "dimensions": ["store"], "from": "2025-01-01", "to": "2025-01-31"})
    assert wrong.json()["extra"] == {
        "dimension": "store",
        "metric": "sends",
        "valid": list(applicable_dimensions("sends")),
    }
    assert post(analyst, ["revenue"]).json()["message"] == "The body must be a JSON object."


def test_the_command_refuses_a_missing_or_unknown_tenant_and_a_bad_filter(shop):
    for arguments, message in (
        (["--metrics=revenue"], "Give --tenant SLUG (or --catalog)."),
        (["--tenant=nobody", "--metrics=revenue"], "No tenant with slug 'nobody'."),
        ([f"--tenant={shop.slug}", "--metrics=revenue", "--filter=store"], "--filter takes DIMENSION=VALUE"),
    ):
        with pytest.raises(CommandError) as error:
            run_command(*arguments)
        assert error.value.returncode == 2
        assert str(error.value).startswith(message)


# --- Cache ---------------------------------------------------------------------------------------------------------


def sale(order_id: str, amount: str, day: date = date(2025, 5, 5)) -> SalesLine:
    return SalesLine(
        order_id=order_id,
        line_no=1,
        ts=datetime.combine(day, datetime.min.time(), UTC).replace(hour=12),
        amount=Decimal(amount),
        customer_id=f"C-{order_id}",
        store="Main",
    )


@pytest.fixture
def statements(monkeypatch) -> list[int]:
    """The tenant of every ClickHouse statement the metric queries send (our code path, counted, not mocked)."""
    sent: list[int] = []
    real = selectors.tenant_query

    def counting(sql: str, params: dict | None = None, **options: Any) -> Any:
        from analytics.clickhouse.query import current_tenant_id

        sent.append(current_tenant_id())
        return real(sql, params, **options)

    monkeypatch.setattr(selectors, "tenant_query", counting)
    return sent


def ask(tenant: Any, **change: Any) -> dict:
    raw = {"metrics": ["revenue", "orders", "returns", "new_customers"], "from": "2025-05-01", "to": "2025-05-31"}
    with tenant_context(tenant):
        return metrics_query(query_parse({**raw, **change}))


def test_a_repeated_query_comes_from_the_cache_until_its_tenant_writes(make_tenant, statements, settings):
    settings.ANALYTICS_QUERY_CACHE_SECONDS = 3600
    first, second = make_tenant(), make_tenant()
    sales_lines_write([sale("A1", "100")], source="test", tenant_id=first.pk)
    sales_lines_write([sale("B1", "7")], source="test", tenant_id=second.pk)

    answer = ask(first)
    assert statements and set(statements) == {first.pk}
    statements.clear()
    assert ask(first) == answer
    assert statements == []  # served from the cache

    assert ask(second)["totals"]["values"]["revenue"] == Decimal("7.00")  # its own entry, its own rows
    assert set(statements) == {second.pk}
    statements.clear()
    assert ask(first, metrics=["revenue"])["totals"]["values"] == {"revenue": Decimal("100.00")}
    assert statements, "another query is another entry"
    statements.clear()

    sales_lines_write([sale("B2", "5")], source="test", tenant_id=second.pk)
    assert ask(first) == answer
    assert statements == [], "another tenant's write leaves this tenant's entries alone"

    sales_lines_write([sale("A2", "50")], source="test", tenant_id=first.pk)
    assert ask(first)["totals"]["values"]["revenue"] == Decimal("150.00")
    assert statements, "this tenant's write makes the answer be computed again"


def test_the_cache_keeps_apart_languages_and_tenant_settings(make_tenant, statements, settings):
    settings.ANALYTICS_QUERY_CACHE_SECONDS = 3600
    tenant = make_tenant()
    late_in_may = SalesLine(
        order_id="A1", line_no=1, ts=datetime(2025, 5, 31, 22, 30, tzinfo=UTC), amount=Decimal(100), customer_id="C"
    )
    sales_lines_write([late_in_may], source="test", tenant_id=tenant.pk)
    with translation.override("en"):
        assert ask(tenant)["metrics"][2]["label"] == "Returns"
    with translation.override("ru"):
        assert ask(tenant)["metrics"][2]["label"] == "Возвраты"
    statements.clear()
    with translation.override("en"):
        assert ask(tenant)["metrics"][2]["label"] == "Returns"
    assert statements == []
    # 22:30 UTC on 31 May is 1 June in Moscow: out of May; moved to London it is in.
    assert ask(tenant)["totals"]["values"]["orders"] == 0
    tenant.timezone = "Europe/London"
    tenant.save()
    assert ask(tenant)["totals"]["values"]["orders"] == 1


# --- Cross-tenant --------------------------------------------------------------------------------------------------


def test_the_same_query_in_two_tenants_sees_only_its_own_rows(generated_tenant, make_tenant):
    first, second, empty = generated_tenant(customers=60, seed=7), generated_tenant(customers=60, seed=8), make_tenant()
    metrics = tuple(m.id for m in METRICS if "city" in applicable_dimensions(m.id))
    raw = {
        "metrics": list(metrics),
        "dimensions": ["city"],
        "from": "2025-01-01",
        "to": "2025-06-30",
        "granularity": "quarter",
    }
    answers = {}
    for tenant in (first, second):
        with tenant_context(tenant):
            answers[tenant.pk] = metrics_query(query_parse(raw))
        expected = reference_query(
            facts_load(tenant), metrics, date(2025, 1, 1), date(2025, 6, 30), "quarter", ("city",)
        )
        assert answers[tenant.pk]["totals"]["values"] == expected.totals
        for row in answers[tenant.pk]["rows"]:
            assert row["values"] == expected.evaluate((row["bucket"], (row["dimensions"]["city"],))), row
    assert answers[first.pk]["totals"] != answers[second.pk]["totals"]
    with tenant_context(empty):
        nothing = metrics_query(query_parse(raw))
    assert nothing["rows"] == []
    assert not any(nothing["totals"]["values"].values())
