"""Cohorts, RFM and CLV read a fresh ``customer_histories`` build instead of the sales lines, and answer the same.

Each test answers from the facts first (no build yet), then rebuilds the pre-aggregations, checks that the
statements sent read the build, and compares both answers with each other and with the pandas references of
test_cohorts.py, test_rfm.py and test_clv.py (computed from the sales lines, never from the build).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd
import pytest
from django_tenants.utils import tenant_context

from analytics import selectors
from analytics.analyses import clv, cohorts, rfm
from analytics.analyses.base import analysis_run
from analytics.preaggregations import CUSTOMER_HISTORIES, fresh_builds, preaggregations_rebuild
from analytics.semantic.spec import query_parse
from analytics.tests.conftest import facts_frame
from analytics.tests.test_clv import CALIBRATION_END, expected_summaries, summaries_frame
from analytics.tests.test_cohorts import assert_matches as assert_cohorts_match
from analytics.tests.test_cohorts import expected_cohorts
from analytics.tests.test_rfm import assert_matches as assert_rfm_matches
from analytics.tests.test_rfm import customers_of, expected_rfm

VLADIVOSTOK = "Asia/Vladivostok"


def rebuild(tenant: Any) -> None:
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    assert CUSTOMER_HISTORIES in fresh_builds(tenant.pk)


def recorded(monkeypatch: pytest.MonkeyPatch, module: Any, function: str = "tenant_query") -> list[str]:
    """The list the statements ``module`` sends through ``function`` go to from now on."""
    sent: list[str] = []
    real: Callable[..., Any] = getattr(module, function)

    def recording(sql: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(sql)
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(module, function, recording)
    return sent


def run(tenant: Any, name: str, params: dict[str, Any]) -> dict[str, Any]:
    with tenant_context(tenant):
        return analysis_run(name, params)


COHORT_RANGES = (
    {"from": date(2024, 1, 1), "to": date(2025, 12, 31), "granularity": "month"},
    {"from": date(2024, 6, 20), "to": date(2025, 3, 10), "granularity": "month"},
    {"from": date(2025, 9, 3), "to": date(2025, 12, 31), "granularity": "week"},
)


def test_cohorts_from_the_histories(generated_tenant, monkeypatch):
    tenant = generated_tenant(timezone=VLADIVOSTOK)
    lines = facts_frame("sales_lines", tenant.pk)
    from_facts = [run(tenant, "cohorts", params) for params in COHORT_RANGES]
    rebuild(tenant)
    sent = recorded(monkeypatch, cohorts)
    for params, answer in zip(COHORT_RANGES, from_facts, strict=True):
        result = run(tenant, "cohorts", params)
        assert result == answer
        expected = expected_cohorts(lines, VLADIVOSTOK, params["from"], params["to"], params["granularity"])
        assert_cohorts_match(result, expected, params["granularity"])
    assert len(sent) == len(COHORT_RANGES) and all("FROM customer_histories" in sql for sql in sent)
    assert not any("sales_lines" in sql for sql in sent)


RFM_WINDOWS = ((date(2025, 12, 31), 365), (date(2025, 3, 15), 180), (date(2024, 12, 1), 90))


def test_rfm_and_its_segment_dimension_from_the_histories(generated_tenant, monkeypatch):
    tenant = generated_tenant(timezone=VLADIVOSTOK)
    lines = facts_frame("sales_lines", tenant.pk)
    from_facts = {
        window: (run(tenant, "rfm", {"as_of": window[0], "lookback_days": window[1]}), customers_of(tenant, *window))
        for window in RFM_WINDOWS
    }
    rebuild(tenant)
    sent = recorded(monkeypatch, rfm)
    for (as_of, lookback_days), (answer, customers) in from_facts.items():
        result = run(tenant, "rfm", {"as_of": as_of, "lookback_days": lookback_days})
        assert result == answer
        assert_rfm_matches(result, expected_rfm(lines, VLADIVOSTOK, as_of, lookback_days))
        pd.testing.assert_frame_equal(customers_of(tenant, as_of, lookback_days), customers)
    assert sent and all("FROM customer_histories" in sql and "sales_lines" not in sql for sql in sent)

    # The semantic layer's rfm_segment joins the same scores, from the build too.
    compiled = recorded(monkeypatch, selectors)
    with tenant_context(tenant):
        answer = selectors.metrics_query(
            query_parse(
                {"metrics": ["buyers"], "dimensions": ["rfm_segment"], "from": "2025-01-01", "to": "2025-12-31"}
            )
        )
    buyers = {row["dimensions"]["rfm_segment"]: row["values"]["buyers"] for row in answer["rows"]}
    segments = from_facts[RFM_WINDOWS[0]][0]["segments"]
    assert {segment: count for segment, count in buyers.items() if count} == {
        segment["segment"]: segment["customers"] for segment in segments if segment["customers"]
    }
    assert any("FROM customer_histories" in sql and "monetary" in sql for sql in compiled)


def test_clv_from_the_histories(generated_tenant, monkeypatch):
    tenant = generated_tenant(customers=400, seed=3, timezone=VLADIVOSTOK)
    expected = expected_summaries(facts_frame("sales_lines", tenant.pk), VLADIVOSTOK, CALIBRATION_END)
    params = {"calibration_end": CALIBRATION_END, "horizon_days": 180, "limit": 0}
    answer = run(tenant, "clv", params)
    rebuild(tenant)
    sent = recorded(monkeypatch, clv, "tenant_query_arrow")
    pd.testing.assert_frame_equal(summaries_frame(tenant, CALIBRATION_END), expected, check_dtype=False)
    assert run(tenant, "clv", params) == answer
    assert len(sent) == 2 and all("FROM customer_histories" in sql for sql in sent)


def test_each_tenant_reads_only_its_own_histories(generated_tenant):
    first = generated_tenant(customers=200, seed=1)
    second = generated_tenant(customers=90, seed=2, timezone=VLADIVOSTOK)
    for tenant in (first, second):
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        lines = facts_frame("sales_lines", tenant.pk)
        assert_cohorts_match(
            run(tenant, "cohorts", {"from": "2024-01-01", "to": "2025-12-31"}),
            expected_cohorts(lines, timezone, date(2024, 1, 1), date(2025, 12, 31), "month"),
            "month",
        )
        assert_rfm_matches(
            run(tenant, "rfm", {"as_of": "2025-12-31"}), expected_rfm(lines, timezone, date(2025, 12, 31), 365)
        )
        pd.testing.assert_frame_equal(
            summaries_frame(tenant, CALIBRATION_END),
            expected_summaries(lines, timezone, CALIBRATION_END),
            check_dtype=False,
        )
