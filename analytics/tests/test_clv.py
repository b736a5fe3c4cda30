"""CLV: the models against published CDNOW fits and the lifetimes package, the customer summary against pandas."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context
from scipy.special import betaln, gammaln

from analytics import lifetime_value as model
from analytics.analyses.base import InsufficientDataError, analysis_run
from analytics.analyses.clv import customer_summaries
from analytics.clickhouse.query import tenant_insert
from analytics.preaggregations import preaggregations_rebuild
from analytics.tests.conftest import facts_frame
from tenants.errors import ApplicationError

CENT = Decimal("0.01")
VLADIVOSTOK = "Asia/Vladivostok"
CALIBRATION_END = date(2025, 7, 1)
# Fader, Hardie & Lee (2005): BG/NBD on CDNOW (weeks), ln L = −9582.4; Gamma-Gamma on its repeat buyers.
CDNOW_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


def lifetimes_dataset(name: str) -> pd.DataFrame:
    """A CSV shipped by the lifetimes package, found without importing it (it may not import on numpy 2)."""
    (package_dir,) = importlib.util.find_spec("lifetimes").submodule_search_locations
    return pd.read_csv(Path(package_dir) / "datasets" / name)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return lifetimes_dataset("cdnow_customers_summary.csv")


@pytest.fixture(scope="module")
def cdnow_spend() -> pd.DataFrame:
    spend = lifetimes_dataset("cdnow_customers_summary_with_transactions.csv")
    return spend[spend.x > 0]


def assert_within(fitted: object, published: dict[str, float], relative: float) -> None:
    for name, value in published.items():
        assert getattr(fitted, name) == pytest.approx(value, rel=relative), name


def test_bgnbd_reproduces_the_published_cdnow_fit(cdnow):
    fit = model.bgnbd_fit(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert_within(fit.params, CDNOW_BGNBD, relative=0.01)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert fit.customers == len(cdnow) == 2357

    # The same fit on customers merged by identical summary, with weights.
    merged = cdnow.groupby(["frequency", "recency", "T"]).size().reset_index(name="customers")
    weighted = model.bgnbd_fit(merged.frequency, merged.recency, merged["T"], merged.customers)
    assert len(merged) < len(cdnow)
    for name in CDNOW_BGNBD:
        assert getattr(weighted.params, name) == pytest.approx(getattr(fit.params, name), rel=1e-6)
    assert weighted.log_likelihood == pytest.approx(fit.log_likelihood, rel=1e-9)

    # In days instead of weeks only α changes, by the same factor.
    in_days = model.bgnbd_fit(cdnow.frequency, cdnow.recency * 7, cdnow["T"] * 7)
    assert in_days.params.alpha == pytest.approx(fit.params.alpha * 7, rel=1e-6)
    for name in ("r", "a", "b"):
        assert getattr(in_days.params, name) == pytest.approx(getattr(fit.params, name), rel=1e-6)


def bgnbd_log_likelihood(params: model.BgNbdParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> float:
    """The BG/NBD likelihood written as in the paper, customer by customer."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    total = 0.0
    for frequency, recency, observed in zip(x, t_x, age, strict=True):
        common = gammaln(r + frequency) - gammaln(r) + r * np.log(alpha) + betaln(a, b + frequency) - betaln(a, b)
        alive = (alpha + observed) ** -(r + frequency)
        gone = a / (b + frequency - 1) * (alpha + recency) ** -(r + frequency) if frequency else 0.0
        total += common + np.log(alive + gone)
    return total


def test_the_reported_likelihoods_are_the_models_at_the_optimum(cdnow, cdnow_spend):
    fit = model.bgnbd_fit(cdnow.frequency, cdnow.recency, cdnow["T"])
    assert fit.log_likelihood == pytest.approx(
        bgnbd_log_likelihood(fit.params, *(cdnow[column].to_numpy() for column in ("frequency", "recency", "T"))),
        rel=1e-9,
    )
    spend = model.gamma_gamma_fit(cdnow_spend.x, cdnow_spend.zbar)
    p, q, v = spend.params.p, spend.params.q, spend.params.v
    x, m = cdnow_spend.x.to_numpy(), cdnow_spend.zbar.to_numpy()
    # Mean spend m of x purchases given ν is Gamma(px, νx); ν ~ Gamma(q, v).
    expected = np.sum(
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )
    assert spend.log_likelihood == pytest.approx(expected, rel=1e-9)


def test_gamma_gamma_reproduces_the_published_cdnow_fit(cdnow_spend):
    fit = model.gamma_gamma_fit(cdnow_spend.x, cdnow_spend.zbar)
    assert_within(fit.params, CDNOW_GAMMA_GAMMA, relative=0.01)
    assert fit.customers == 946
    assert fit.params.population_mean == pytest.approx(6.25 * 15.44 / 2.74, rel=0.01)


# lifetimes sets a pandas option that pandas 3 deprecates, on import.
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_predictions_match_the_lifetimes_package(cdnow, cdnow_spend):
    from lifetimes import BetaGeoFitter, GammaGammaFitter  # reference only, never used by the product

    x, t_x, age = (cdnow[column].to_numpy() for column in ("frequency", "recency", "T"))
    reference = BetaGeoFitter().fit(x, t_x, age)
    ours = model.bgnbd_fit(x, t_x, age).params
    for name in CDNOW_BGNBD:
        assert getattr(ours, name) == pytest.approx(reference.params_[name], rel=1e-4)
    # Predictions from the same parameters, so only the formulas are compared.
    same = model.BgNbdParams(**{name: float(reference.params_[name]) for name in CDNOW_BGNBD})
    for weeks in (1, 10, 52, 200):
        np.testing.assert_allclose(
            model.expected_purchases(same, x, t_x, age, weeks),
            reference.conditional_expected_number_of_purchases_up_to_time(weeks, x, t_x, age),
            rtol=1e-9,
        )
    np.testing.assert_allclose(
        model.probability_alive(same, x, t_x, age), reference.conditional_probability_alive(x, t_x, age), rtol=1e-9
    )

    spend_x, spend_m = cdnow_spend.x.to_numpy(), cdnow_spend.zbar.to_numpy()
    spend_reference = GammaGammaFitter().fit(spend_x, spend_m)
    spend_same = model.GammaGammaParams(**{name: float(spend_reference.params_[name]) for name in "pqv"})
    np.testing.assert_allclose(
        model.expected_transaction_value(spend_same, spend_x, spend_m),
        spend_reference.conditional_expected_average_profit(spend_x, spend_m),
        rtol=1e-9,
    )


def test_the_fit_recovers_the_parameters_of_simulated_customers():
    """Customers drawn from the BG/NBD story itself: 200,000 of them pin the parameters to a few percent."""
    rng = np.random.default_rng(11)
    size, truth = 200_000, model.BgNbdParams(r=0.6, alpha=40.0, a=0.9, b=4.0)
    rate, dropout = rng.gamma(truth.r, 1 / truth.alpha, size), rng.beta(truth.a, truth.b, size)
    age = rng.uniform(1, 730, size)
    # Purchases of a process that never stops, of which the customer makes those before leaving
    # (after the k-th repeat purchase with probability p); t_x is the x-th of the n uniform times.
    made = rng.poisson(rate * age)
    repeat = np.minimum(made, rng.geometric(dropout))
    recency = np.where(repeat > 0, age * rng.beta(np.maximum(repeat, 1), made - repeat + 1), 0)
    fitted = model.bgnbd_fit(repeat, recency, age).params
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0.05), name


def test_waits_and_discounting_follow_their_definitions(cdnow):
    params = model.bgnbd_fit(cdnow.frequency, cdnow.recency, cdnow["T"]).params
    x, age = np.array([0.0, 1, 5, 20]), np.array([30.0, 30, 30, 30])
    # The wait given alive is exponential at a rate whose posterior is Gamma(r + x, α + T): check by sampling.
    rng = np.random.default_rng(5)
    for frequency, observed, mean, median in zip(
        x,
        age,
        model.days_to_next_purchase_if_alive(params, x, age),
        model.median_days_to_next_purchase_if_alive(params, x, age),
        strict=True,
    ):
        waits = rng.exponential(1 / rng.gamma(params.r + frequency, 1 / (params.alpha + observed), 400_000))
        assert np.median(waits) == pytest.approx(median, rel=0.02)
        if params.r + frequency > 2:  # a finite variance: the sample mean converges
            assert waits.mean() == pytest.approx(mean, rel=0.02)
        elif params.r + frequency <= 1:
            assert np.isnan(mean)

    undiscounted = model.expected_purchases_if_alive(params, x, age, 52)
    assert np.allclose(model.discounted_purchases_if_alive(params, x, age, 52, 0.0), undiscounted)
    # These parameters are in weeks, read as days here: the bounds hold whatever the unit.
    discounted = model.discounted_purchases_if_alive(params, x, age, 52, 0.2)
    assert np.all(discounted < undiscounted)
    assert np.all(discounted > undiscounted * 1.2 ** (-52 / 365))


def test_a_fit_that_runs_off_to_a_limit_is_an_error_not_numbers():
    # Every customer buys every 30 days and bought yesterday: nobody ever drops out, no heterogeneity.
    every = np.arange(60) % 12 + 1.0
    with pytest.raises(model.ModelFitError, match="BG/NBD model could not be fitted") as error:
        model.bgnbd_fit(every, 30 * every, 30 * every + 1)
    assert isinstance(error.value, ApplicationError)
    # Every repeat buyer spends exactly the same: spend has no dispersion to fit.
    with pytest.raises(model.ModelFitError, match="Gamma-Gamma model could not be fitted"):
        model.gamma_gamma_fit(every, np.full(60, 100.0))
    with pytest.raises(ValueError, match="finite"):
        model.gamma_gamma_fit(every, np.full(60, np.inf))


def test_an_optimum_flat_to_rounding_is_a_fit_even_when_the_line_search_gives_up():
    # At 5M customers the mean likelihood is flat to rounding near its optimum: L-BFGS-B's line search then finds no
    # decrease and reports failure, with the gradient already ~1e-7. Rounding noise of 1e-12 on the value does that.
    def noisy_bowl(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum(np.cosh(x - 0.5) - 1) + 1e-12 * np.sum(np.sin(1e9 * x))), np.sinh(x - 0.5)

    x, mean_ll, _iterations = model._maximise("test", noisy_bowl, np.zeros(3))
    assert np.allclose(np.log(x), 0.5, atol=1e-6)
    assert mean_ll == pytest.approx(0, abs=1e-10)

    # Stopped on a slope is still an error: here after too few iterations for the gradient to vanish.
    with pytest.raises(model.ModelFitError, match="without converging"):
        model._maximise("test", noisy_bowl, np.full(3, 11.0), max_iterations=2)


def expected_summaries(lines: pd.DataFrame, timezone: str, calibration_end: date) -> pd.DataFrame:
    """frequency, recency, T and repeat revenue in cents per customer, with pandas."""
    local_day = pd.to_datetime(lines.ts, utc=True).dt.tz_convert(timezone).dt.date
    lines = lines.assign(day=local_day, cents=[int(amount * 100) for amount in lines.amount])
    identified = lines[(lines.customer_id != "") & (lines.day < calibration_end)]
    days = identified[identified.is_return == 0].groupby("customer_id").day.agg(["min", "max", "nunique"])
    buyers = identified[identified.customer_id.isin(days.index)]
    after_first = buyers[buyers.day > buyers.customer_id.map(days["min"])]
    return pd.DataFrame(
        {
            "frequency": days["nunique"] - 1,
            "recency": [(last - first).days for first, last in zip(days["min"], days["max"], strict=True)],
            "T": [(calibration_end - first).days for first in days["min"]],
            "repeat_cents": after_first.groupby("customer_id").cents.sum().reindex(days.index, fill_value=0),
        }
    ).sort_index()


def summaries_frame(tenant, calibration_end: date) -> pd.DataFrame:
    with tenant_context(tenant):
        summaries = customer_summaries(calibration_end=calibration_end)
    return pd.DataFrame(
        {
            "frequency": summaries.frequency,
            "recency": summaries.recency,
            "T": summaries.T,
            "repeat_cents": summaries.repeat_cents,
        },
        index=pd.Index(summaries.customer_id.to_pylist(), name="customer_id"),
    ).sort_index()


def clv_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("clv", params)


def test_customer_summary_matches_pandas(generated_tenant):
    tenant = generated_tenant(timezone=VLADIVOSTOK)
    lines = facts_frame("sales_lines", tenant.pk)
    expected = expected_summaries(lines, VLADIVOSTOK, CALIBRATION_END)
    # The history holds what the definitions are about: returns, and days with several receipts.
    history = lines[
        (lines.customer_id != "") & (pd.to_datetime(lines.ts, utc=True) < pd.Timestamp("2025-06-30", tz="UTC"))
    ]
    assert history.is_return.sum() > 0
    assert (expected.frequency > 0).sum() > 50
    pd.testing.assert_frame_equal(summaries_frame(tenant, CALIBRATION_END), expected, check_dtype=False)

    result = clv_of(tenant, calibration_end=CALIBRATION_END, limit=0)
    rows = pd.DataFrame(result["rows"]).set_index("customer_id").sort_index()
    assert result["summary"]["customers"] == len(rows) == len(expected)
    assert (rows[["frequency", "recency", "T"]] == expected[["frequency", "recency", "T"]]).all().all()
    repeat = expected.frequency > 0
    monetary = [
        (Decimal(cents) / 100 / frequency).quantize(CENT, ROUND_HALF_UP)
        for cents, frequency in zip(expected.repeat_cents[repeat], expected.frequency[repeat], strict=True)
    ]
    assert rows.monetary[repeat].tolist() == monetary
    assert rows.monetary[~repeat].isna().all()


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def _gamma_gamma_reference(frequency: np.ndarray, order_value: np.ndarray) -> Any:
    """lifetimes' Gamma-Gamma fit from its default start, else from other neutral ones (log-parameters 0, then 1).

    Its BFGS stops with "precision loss" from the default start on some CPUs (seen on an AMD EPYC, not on the
    machines before) though the optimum is well defined; none of the starts is ours, so the check stays independent.
    """
    from lifetimes import GammaGammaFitter
    from lifetimes.utils import ConvergenceError

    for start in (None, 0.0, 1.0):
        try:
            return GammaGammaFitter().fit(
                frequency, order_value, initial_params=None if start is None else np.full(3, start)
            )
        except ConvergenceError:
            continue
    raise AssertionError("lifetimes' Gamma-Gamma fit converged from none of its starts")


def test_clv_matches_the_lifetimes_package_on_generated_data(generated_tenant):
    from lifetimes import BetaGeoFitter  # reference only, never used by the product

    tenant = generated_tenant(customers=400, seed=3)
    summary = expected_summaries(facts_frame("sales_lines", tenant.pk), "Europe/Moscow", CALIBRATION_END)
    horizon = 180
    result = clv_of(tenant, calibration_end=CALIBRATION_END, horizon_days=horizon, limit=0)
    fitted = result["model"]
    assert fitted["time_unit"] == "day"
    assert fitted["bg_nbd"]["customers"] == len(summary)

    x, t_x, age = (summary[column].to_numpy(dtype=float) for column in ("frequency", "recency", "T"))
    purchases = BetaGeoFitter().fit(x, t_x, age)
    for name in ("r", "alpha", "a", "b"):
        assert fitted["bg_nbd"][name] == pytest.approx(purchases.params_[name], rel=1e-3), name
    valued = summary[(summary.frequency > 0) & (summary.repeat_cents > 0)]
    spend = _gamma_gamma_reference(
        valued.frequency.to_numpy(), (valued.repeat_cents / 100 / valued.frequency).to_numpy()
    )
    for name in ("p", "q", "v"):
        assert fitted["gamma_gamma"][name] == pytest.approx(spend.params_[name], rel=1e-3), name
    assert fitted["gamma_gamma"]["customers"] == len(valued)

    rows = pd.DataFrame(result["rows"]).set_index("customer_id").loc[summary.index]
    np.testing.assert_allclose(
        rows.expected_purchases,
        purchases.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, age),
        rtol=2e-3,
        atol=1e-4,
    )
    np.testing.assert_allclose(
        rows.probability_alive, purchases.conditional_probability_alive(x, t_x, age), rtol=2e-3, atol=1e-4
    )
    # Order value: the customer's own mean (0 if returns exceed it) shrunk towards the population mean.
    own = np.where(
        summary.frequency > 0, np.maximum(summary.repeat_cents, 0) / 100 / np.maximum(summary.frequency, 1), 0
    )
    order_value = spend.conditional_expected_average_profit(summary.frequency.to_numpy(), own)
    np.testing.assert_allclose(rows.expected_order_value.astype(float), order_value, rtol=2e-3)
    # The mean wait is infinite (null) exactly where r + x ≤ 1; the median always exists.
    infinite = fitted["bg_nbd"]["r"] + summary.frequency <= 1
    assert rows.expected_days_to_next_order.isna().tolist() == infinite.tolist()
    assert (rows.median_days_to_next_order > 0).all()
    # Undiscounted CLV = expected purchases × order value, up to the rounding of each in the output.
    value = rows.expected_order_value.astype(float)
    rounding = value * 0.5e-4 + rows.expected_purchases * 0.005 + 0.01
    assert (np.abs(rows.clv.astype(float) - rows.expected_purchases * value) <= rounding).all()
    assert abs(sum(rows.clv) - result["summary"]["clv"]) <= Decimal("0.005") * len(rows)

    # Rows come by CLV descending, ties by customer id.
    order = [(row["clv"], row["customer_id"]) for row in result["rows"]]
    assert order == sorted(order, key=lambda pair: (-pair[0], pair[1]))
    # Discounting lowers every CLV, by at most the discount of the horizon's end.
    discounted = clv_of(
        tenant, calibration_end=CALIBRATION_END, horizon_days=horizon, annual_discount_rate=0.25, limit=0
    )
    lowered = pd.DataFrame(discounted["rows"]).set_index("customer_id").loc[summary.index].clv.astype(float)
    undiscounted = rows.clv.astype(float)
    assert (lowered <= undiscounted).all() and (lowered >= undiscounted * 1.25 ** (-horizon / 365) - 0.01).all()
    assert discounted["summary"]["clv"] < result["summary"]["clv"]


def test_each_tenant_sees_only_its_own_customers(generated_tenant, make_tenant):
    first = generated_tenant(customers=300, seed=1)
    second = generated_tenant(customers=150, seed=2, timezone=VLADIVOSTOK)
    empty = make_tenant()
    answers = {}
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        expected = expected_summaries(facts_frame("sales_lines", tenant.pk), timezone, CALIBRATION_END)
        pd.testing.assert_frame_equal(summaries_frame(tenant, CALIBRATION_END), expected, check_dtype=False)
        answers[tenant.pk] = clv_of(tenant, calibration_end=CALIBRATION_END)
        assert answers[tenant.pk]["summary"]["customers"] == len(expected)
    assert answers[first.pk]["model"] != answers[second.pk]["model"]
    with pytest.raises(InsufficientDataError):
        clv_of(empty, calibration_end=CALIBRATION_END)


def test_the_command_prints_the_fitted_parameters_and_the_api_answers_the_same(
    generated_tenant, make_user, logged_in_client
):
    tenant = generated_tenant()
    out = StringIO()
    call_command(
        "analysis", "clv", "--tenant", tenant.slug, "--param", "calibration_end=2025-12-01",
        "--param", "horizon_days=90", "--param", "limit=10", stdout=out,
    )  # fmt: skip
    printed = json.loads(out.getvalue())
    assert set(printed["model"]["bg_nbd"]) >= {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(printed["model"]["gamma_gamma"]) >= {"p", "q", "v", "log_likelihood"}
    assert all(printed["model"]["bg_nbd"][name] > 0 for name in ("r", "alpha", "a", "b"))
    assert all(printed["model"]["gamma_gamma"][name] > 0 for name in ("p", "q", "v"))
    assert printed["params"] == {
        "calibration_end": "2025-12-01", "horizon_days": 90, "annual_discount_rate": 0.0, "limit": 10,
    }  # fmt: skip
    assert len(printed["rows"]) == 10
    assert printed["summary"]["customers"] > 100

    client = logged_in_client(tenant, make_user(tenant, "analyst"))
    response = client.get("/api/v1/analyses/clv", {"calibration_end": "2025-12-01", "horizon_days": 90, "limit": 10})
    assert response.status_code == 200
    assert response.json() == printed

    # By default 100 customers; limit=0 lists them all.
    with tenant_context(tenant):
        everyone = analysis_run("clv", {"calibration_end": "2025-12-01", "limit": "0"})
        default = analysis_run("clv", {"calibration_end": "2025-12-01"})
    assert len(everyone["rows"]) == everyone["summary"]["customers"] > 100
    assert default["rows"] == everyone["rows"][:100]


def test_too_little_data_is_refused_by_the_command_and_the_api(generated_tenant, make_user, logged_in_client):
    tiny = generated_tenant(customers=20)
    client = logged_in_client(tiny, make_user(tiny, "analyst"))
    refusals = [
        ({"calibration_end": "2025-12-31"}, "customers with a repeat purchase"),
        ({"calibration_end": "2024-02-15"}, "days of purchase history"),
        ({"calibration_end": "2099-01-01"}, "in the future"),
        ({"horizon_days": "0"}, "horizon_days"),
    ]
    for params, message in refusals:
        response = client.get("/api/v1/analyses/clv", params)
        assert response.status_code == 400
        assert message in response.json()["message"]
        pairs = [f"--param={name}={value}" for name, value in params.items()]
        with pytest.raises(CommandError, match=message) as error:
            call_command("analysis", "clv", "--tenant", tiny.slug, *pairs, stdout=StringIO())
        assert error.value.returncode == 2


SALES_COLUMNS = ["order_id", "line_no", "ts", "customer_id", "amount", "is_return", "version"]


def moscow_noon(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=UTC)  # 12:00 in Moscow


@pytest.mark.parametrize("from_histories", [False, True])
def test_the_summary_follows_the_btyd_definitions(make_tenant, from_histories):
    tenant = make_tenant()
    start = date(2025, 1, 1)
    lines = [
        # A: two receipts on day 0 (one purchase day), a return-only day 3, purchases on days 10 and 20;
        # the day-10 purchase is partly returned on day 10 itself.
        ("A1", 1, moscow_noon(start), "A", "100.00", 0),
        ("A2", 1, moscow_noon(start) + timedelta(hours=2), "A", "50.00", 0),
        ("A1", 1, moscow_noon(start + timedelta(days=3)), "A", "-30.00", 1),
        ("A3", 1, moscow_noon(start + timedelta(days=10)), "A", "200.00", 0),
        ("A3", 2, moscow_noon(start + timedelta(days=10)), "A", "80.00", 0),
        ("A3", 2, moscow_noon(start + timedelta(days=10)) + timedelta(hours=1), "A", "-80.00", 1),
        ("A4", 1, moscow_noon(start + timedelta(days=20)), "A", "90.00", 0),
        # B: returns a purchase made anonymously before their first identified one, on day 5.
        ("X1", 1, moscow_noon(start + timedelta(days=2)), "B", "-40.00", 1),
        ("B1", 1, moscow_noon(start + timedelta(days=5)), "B", "70.00", 0),
        # C: only a return, no purchase: not a customer. D: buys on the calibration day itself: not yet.
        ("C1", 1, moscow_noon(start + timedelta(days=6)), "C", "-10.00", 1),
        ("D1", 1, moscow_noon(start + timedelta(days=30)), "D", "10.00", 0),
        # Anonymous receipts never count.
        ("N1", 1, moscow_noon(start + timedelta(days=7)), "", "500.00", 0),
    ]
    rows = [
        (order, line, ts, customer, Decimal(amount), is_return, 1)
        for order, line, ts, customer, amount, is_return in lines
    ]
    tenant_insert("sales_lines", rows, SALES_COLUMNS, tenant_id=tenant.pk)
    if from_histories:
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    summaries = summaries_frame(tenant, start + timedelta(days=30))
    assert summaries.to_dict("index") == {
        # Repeat revenue of A: −30 (day 3) + 200 + 80 − 80 (day 10) + 90 (day 20) = 260.
        "A": {"frequency": 2, "recency": 20, "T": 30, "repeat_cents": 26000},
        "B": {"frequency": 0, "recency": 0, "T": 25, "repeat_cents": 0},
    }


def test_a_model_that_does_not_converge_answers_400_not_numbers(make_tenant, make_user, logged_in_client):
    """Sixty customers who each buy every 30 days like clockwork, the last time yesterday: no dropout to fit."""
    tenant = make_tenant()
    calibration_end = date(2025, 6, 1)
    rows = [
        (f"O{customer}-{purchase}", 1, moscow_noon(calibration_end - timedelta(days=1 + 30 * purchase)), f"C{customer}",
         Decimal(1000 + 37 * customer + 11 * purchase), 0, 1)
        for customer in range(60)
        for purchase in range(customer % 12 + 2)
    ]  # fmt: skip
    tenant_insert("sales_lines", rows, SALES_COLUMNS, tenant_id=tenant.pk)
    client = logged_in_client(tenant, make_user(tenant, "analyst"))
    response = client.get("/api/v1/analyses/clv", {"calibration_end": calibration_end.isoformat()})
    assert response.status_code == 400
    assert "BG/NBD model could not be fitted" in response.json()["message"]
