"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model (numpy/scipy).

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a customer
buys at rate λ ~ Gamma(r, α); after each repeat purchase they leave for good with probability p ~ Beta(a, b).
Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): the values of a customer's transactions are
Gamma(p, ν) with ν ~ Gamma(q, v) across customers, independent of how often they buy.

A customer is summarised BTYD-style: ``frequency`` x = repeat purchases, ``recency`` t_x = time from the
first to the last purchase, ``T`` = time from the first purchase to the end of observation (any one time
unit: α and every horizon are in it; arguments call it ``age``), ``monetary`` m = mean value of the
repeat purchases.

Both models are fitted by maximum likelihood with L-BFGS-B on the logarithms of their parameters
(positive by construction), with analytic gradients. Customers with identical summaries share a weight,
so the BG/NBD likelihood costs one pass over the distinct (x, t_x, T), whatever the number of customers;
the terms that depend on x alone are computed once per distinct x. A fit that does not converge, runs
off towards a limit case of the model or has a non-finite likelihood raises ``ModelFitError``: no
numbers then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.utils.translation import gettext as _
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from tenants.errors import ApplicationError

# Times and money are scaled to a mean of one before fitting, so every parameter of a real customer
# base is within a few powers of e of one. The search box for log-parameters is ±20; an optimum beyond
# ±12 means the likelihood keeps rising towards a limit case of the model (no dropout, identical
# customers): the optimizer stops somewhere on a plateau, and the numbers mean nothing.
LOG_BOUND = 20.0
LOG_PLAUSIBLE = 12.0
MAX_ITERATIONS = 1000
# A real optimum has a zero gradient (about 1e-8 per customer and log-parameter at our tolerances); an
# optimizer that gives up on a slope, where rounding noise drowns the likelihood's rise, shows 0.1 or more.
STATIONARY_GRADIENT = 1e-4
# Discounting steps in days: about a month, the rhythm in which retail revenue is usually discounted.
DISCOUNT_STEP = 30


class ModelFitError(ApplicationError):
    """The likelihood maximisation failed: the data do not pin the parameters down."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    @property
    def population_mean(self) -> float:
        """E[transaction value] over all customers: p·v / (q − 1), finite because fits require q > 1."""
        return self.p * self.v / (self.q - 1)


@dataclass(frozen=True)
class FitResult:
    params: BgNbdParams | GammaGammaParams
    log_likelihood: float  # the total over all customers
    iterations: int
    customers: float  # the total weight the model was fitted on


def _as_arrays(*columns: np.ndarray) -> list[np.ndarray]:
    arrays = [np.asarray(column, dtype=np.float64) for column in columns]
    if len({array.shape for array in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError("The model's inputs must be 1-D arrays of one length.")
    if not all(np.all(np.isfinite(array)) for array in arrays):
        raise ValueError("The model's inputs must be finite.")
    return arrays


def _weights(weights: np.ndarray | None, size: int) -> np.ndarray:
    if weights is None:
        return np.ones(size)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (size,) or np.any(weights <= 0):
        raise ValueError("Weights must be positive, one per row.")
    return weights


def _dot(weights: np.ndarray, values: np.ndarray) -> float:
    """Σ weights·values without BLAS: its threads spin against each other on a busy machine, tens of times slower."""
    return float(np.einsum("i,i->", weights, values))


def _per_distinct(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values and their total weights, for terms that depend on nothing else."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return distinct, np.bincount(inverse, weights=weights)


def _maximise(
    model: str,
    negative_mean_ll: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    max_iterations: int = MAX_ITERATIONS,
) -> tuple[np.ndarray, float, int]:
    """Minimise the mean negative log-likelihood over log-parameters: (parameters, mean ln L, iterations)."""
    # Far from the optimum the terms overflow to inf or nan; the optimizer steps back, and the result is checked.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = minimize(
            negative_mean_ll,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * len(start),
            options={"maxiter": max_iterations, "ftol": 1e-13, "gtol": 1e-9},
        )
    if not np.isfinite(result.fun) or not np.all(np.isfinite(result.x)):
        reason = _("the likelihood is not finite")
    elif np.any(np.abs(result.x) > LOG_PLAUSIBLE):
        reason = _("a parameter runs off towards a limit case of the model")
    elif np.max(np.abs(result.jac)) > STATIONARY_GRADIENT:
        # Not ``result.success``: at the optimum of a mean over millions of customers the likelihood is flat to
        # rounding, and L-BFGS-B reports a failed line search there (5M customers: gradient 2e-7). The gradient says.
        reason = _("the optimizer stopped without converging")
    else:
        return np.exp(result.x), -float(result.fun), int(result.nit)
    raise ModelFitError(
        _("The %(model)s model could not be fitted: %(reason)s. The purchase histories do not determine it.")
        % {"model": model, "reason": reason},
        {"model": model, "reason": str(reason), "optimizer": str(result.message), "log_parameters": result.x.tolist()},
    )


def bgnbd_fit(
    frequency: np.ndarray, recency: np.ndarray, age: np.ndarray, weights: np.ndarray | None = None
) -> FitResult:
    """Maximum-likelihood r, α, a, b from customer summaries (``weights`` = customers per row).

    Per customer, with δ = 1 if x > 0:
    ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
           + ln[(α+T)^−(r+x) + δ · a/(b+x−1) · (α+t_x)^−(r+x)]
    """
    x, t_x, age = _as_arrays(frequency, recency, age)
    w = _weights(weights, len(x))
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > age) or np.any(age <= 0):
        raise ValueError("Need 0 ≤ recency ≤ T, T > 0 and frequency ≥ 0.")
    total = w.sum()
    time_scale = float(np.average(age, weights=w))
    t_x, age = t_x / time_scale, age / time_scale
    distinct_x, weight_of_x = _per_distinct(x, w)
    once = x == 0
    # One-time buyers have no second term: ln L's last part is −r·ln(α+T) for them.
    once_age, once_w = age[once], w[once]
    x, t_x, age, w = x[~once], t_x[~once], age[~once], w[~once]

    def negative_mean_ll(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(log_params)
        # Terms of x alone, once per distinct x.
        by_x = (
            gammaln(r + distinct_x)
            - gammaln(r)
            + gammaln(a + b)
            + gammaln(b + distinct_x)
            - gammaln(b)
            - gammaln(a + b + distinct_x)
        )
        ll = _dot(weight_of_x, by_x) + total * r * np.log(alpha)
        d_r = _dot(weight_of_x, digamma(r + distinct_x) - digamma(r)) + total * np.log(alpha)
        d_alpha = total * r / alpha
        d_a = _dot(weight_of_x, digamma(a + b) - digamma(a + b + distinct_x))
        d_b = _dot(weight_of_x, digamma(a + b) + digamma(b + distinct_x) - digamma(b) - digamma(a + b + distinct_x))

        log_once = np.log(alpha + once_age)
        ll -= r * _dot(once_w, log_once)
        d_r -= _dot(once_w, log_once)
        d_alpha -= r * _dot(once_w, 1 / (alpha + once_age))

        # Repeat buyers: ln[e^A + e^B], A = −(r+x)·ln(α+T), B = ln a − ln(b+x−1) − (r+x)·ln(α+t_x);
        # ``share`` = e^B / (e^A + e^B) weighs the two terms in the derivatives.
        log_age, log_last = np.log(alpha + age), np.log(alpha + t_x)
        shape = r + x
        first = -shape * log_age
        second = np.log(a) - np.log(b + x - 1) - shape * log_last
        ll += _dot(w, np.logaddexp(first, second))
        share = expit(second - first)
        d_r -= _dot(w, (1 - share) * log_age + share * log_last)
        d_alpha -= _dot(w, shape * ((1 - share) / (alpha + age) + share / (alpha + t_x)))
        d_a += _dot(w, share) / a
        d_b -= _dot(w, share / (b + x - 1))

        gradient = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
        return -ll / total, -gradient / total

    (r, alpha, a, b), mean_ll, iterations = _maximise("BG/NBD", negative_mean_ll, np.zeros(4))
    # Back to the data's time unit: α is a time, and the density of x purchase times gains scale^−x.
    params = BgNbdParams(float(r), float(alpha * time_scale), float(a), float(b))
    log_likelihood = mean_ll * total - _dot(weight_of_x, distinct_x) * np.log(time_scale)
    return FitResult(params, float(log_likelihood), iterations, float(total))


def gamma_gamma_fit(frequency: np.ndarray, monetary: np.ndarray, weights: np.ndarray | None = None) -> FitResult:
    """Maximum-likelihood p, q, v from repeat buyers' mean spend (x > 0 and m > 0 only).

    Per customer: ln L = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln v + (px−1) ln m + px ln x − (px+q) ln(xm+v).
    Everything but the last term is a sum over x or over fixed data, computed once.
    """
    x, m = _as_arrays(frequency, monetary)
    w = _weights(weights, len(x))
    if np.any(x <= 0) or np.any(m <= 0):
        raise ValueError("The Gamma-Gamma model takes repeat buyers (frequency > 0) with a positive mean spend.")
    total = w.sum()
    money_scale = float(np.average(m, weights=w))
    m = m / money_scale
    distinct_x, weight_of_x = _per_distinct(x, w)
    sum_x_log_m, sum_log_m, sum_x_log_x = _dot(w, x * np.log(m)), _dot(w, np.log(m)), _dot(w, x * np.log(x))
    xm = x * m

    def negative_mean_ll(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = np.exp(log_params)
        px = p * distinct_x
        log_spend = np.log(xm + v)
        ll = (
            _dot(weight_of_x, gammaln(px + q) - gammaln(px))
            - total * (gammaln(q) - q * np.log(v))
            + p * (sum_x_log_m + sum_x_log_x)
            - sum_log_m
            - p * _dot(w, x * log_spend)
            - q * _dot(w, log_spend)
        )
        d_p = (
            _dot(weight_of_x, distinct_x * (digamma(px + q) - digamma(px)))
            + sum_x_log_m
            + sum_x_log_x
            - _dot(w, x * log_spend)
        )
        d_q = _dot(weight_of_x, digamma(px + q)) - total * (digamma(q) - np.log(v)) - _dot(w, log_spend)
        d_v = total * q / v - _dot(w, (p * x + q) / (xm + v))
        gradient = np.array([d_p * p, d_q * q, d_v * v])
        return -ll / total, -gradient / total

    (p, q, v), mean_ll, iterations = _maximise("Gamma-Gamma", negative_mean_ll, np.zeros(3))
    # Back to the data's money unit: v is an amount, and the density of each mean spend gains 1/scale.
    params = GammaGammaParams(float(p), float(q), float(v * money_scale))
    if params.q <= 1:
        raise ModelFitError(
            _("The Gamma-Gamma model gives spend no finite mean (q = %(q).3f ≤ 1): order values are too dispersed.")
            % {"q": params.q},
            {"model": "Gamma-Gamma", "q": params.q},
        )
    return FitResult(params, float(mean_ll * total - total * np.log(money_scale)), iterations, float(total))


def probability_alive(params: BgNbdParams, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(still a customer at T | x, t_x, T) = 1 / (1 + δ · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)), δ = [x > 0].

    A one-time buyer cannot have left: in BG/NBD dropout happens only right after a repeat purchase.
    """
    x, t_x, age = _as_arrays(frequency, recency, age)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    log_odds_gone = (
        np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    )
    return np.where(repeat, expit(-log_odds_gone), 1.0)


def expected_purchases_if_alive(
    params: BgNbdParams, frequency: np.ndarray, age: np.ndarray, horizon: float
) -> np.ndarray:
    """E[purchases in (T, T + horizon] | alive at T, x, T]; it does not depend on t_x.

    (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; z)], z = t/(α+T+t), the
    BG/NBD conditional expectation without its P(alive) factor. Euler's transformation turns the
    bracket into 1 − (1−z)^(a−1) · ₂F₁(a+b−1−r, a−1; a+b+x−1; z), whose parameters do not grow
    with x, so frequent buyers neither overflow nor lose precision.
    """
    x, age = _as_arrays(frequency, age)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = horizon / (alpha + age + horizon)
    bracket = 1 - (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * bracket


def expected_purchases(
    params: BgNbdParams, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray, horizon: float
) -> np.ndarray:
    """E[purchases in (T, T + horizon] | x, t_x, T] = P(alive) · E[purchases | alive]."""
    return probability_alive(params, frequency, recency, age) * expected_purchases_if_alive(
        params, frequency, age, horizon
    )


def days_to_next_purchase_if_alive(params: BgNbdParams, frequency: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Mean waiting time from T to the next purchase, given the customer is alive at T.

    Alive, they buy again for sure (dropout comes only after a purchase), after an exponential wait
    at their rate λ, whose posterior given alive is Gamma(r+x, α+T): the wait is Lomax, with mean
    (α+T)/(r+x−1). For r+x ≤ 1 the mean is infinite (slow buyers are too likely): NaN then.
    """
    x, age = _as_arrays(frequency, age)
    shape = params.r + x
    return np.where(shape > 1, (params.alpha + age) / np.maximum(shape - 1, 1e-300), np.nan)


def median_days_to_next_purchase_if_alive(params: BgNbdParams, frequency: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The median of that wait, always finite: (α+T)·(2^(1/(r+x)) − 1)."""
    x, age = _as_arrays(frequency, age)
    return (params.alpha + age) * np.expm1(np.log(2) / (params.r + x))


def expected_transaction_value(params: GammaGammaParams, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """E[value of a future transaction | x, m] = p·(v + x·m) / (p·x + q − 1).

    A weighted mean of the population mean p·v/(q−1) and the customer's own mean m, the latter weighing
    more the more repeat purchases there are; for x = 0 it is the population mean (m is not used). A mean net spend
    below zero (returns exceeding purchases) counts as 0: the customer's history pulls towards nothing.
    """
    x, m = _as_arrays(frequency, monetary)
    m = np.maximum(m, 0)
    return params.p * (params.v + x * m) / (params.p * x + params.q - 1)


def discounted_purchases_if_alive(
    params: BgNbdParams, frequency: np.ndarray, age: np.ndarray, horizon: float, annual_discount_rate: float
) -> np.ndarray:
    """Expected purchases in the horizon given alive, each discounted to T at ``annual_discount_rate``.

    The horizon is cut into steps of ``DISCOUNT_STEP`` days (the time unit must be days); the purchases
    expected in a step are discounted by (1 + rate)^(−end of step / 365). At rate 0 this is
    ``expected_purchases_if_alive``.
    """
    ends = np.append(np.arange(DISCOUNT_STEP, horizon, DISCOUNT_STEP, dtype=np.float64), float(horizon))
    cumulative = np.stack([expected_purchases_if_alive(params, frequency, age, end) for end in ends])
    in_step = np.diff(cumulative, axis=0, prepend=0)
    factors = (1 + annual_discount_rate) ** (-ends / 365)
    return np.einsum("k,kp->p", factors, in_step)
