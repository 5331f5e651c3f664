"""Small-study effects and publication bias: Egger's ``regtest``, Begg's ``ranktest``, ``trimfill``.

Each follows metafor 3.8 with its defaults: ``regtest`` is the meta-regression
of yi on the standard error (``model="rma", predictor="sei"``) with the
model's tau^2 estimator and test; ``ranktest`` is Kendall's tau between the
standardised deviates and vi (exact p-value without ties, the normal
approximation with them, as ``cor.test(exact=TRUE)``); ``trimfill`` is Duval and
Tweedie's L0 estimator with the side taken from the sign of Egger's slope.

These tests need enough studies: with fewer than 10 they have little power
(Cochrane Handbook 13.3.5.4), which the caller should say next to any result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import dist
from .model import PoolingError, PoolResult, as_arrays, check_method, fit_moderators, pool_arrays
from .tau2 import Design


@dataclass(frozen=True)
class RegTest:
    """Egger's regression test: the slope of yi on sqrt(vi) and the limit estimate (its intercept).

    ``z`` is the slope's test statistic: a z value, or a t value with ``df``
    degrees of freedom under HKSJ or ``model="lm"``. ``limit_estimate`` (with
    its CI) is the effect expected in a study with standard error 0.
    """

    z: float
    p: float
    df: int | None
    slope: float
    slope_se: float
    limit_estimate: float
    limit_se: float
    limit_ci_low: float
    limit_ci_high: float
    tau2: float | None
    model: str
    method: str
    k: int


@dataclass(frozen=True)
class RankTest:
    """Begg and Mazumdar's rank correlation test: Kendall's tau-b and its two-sided p-value."""

    tau: float
    p: float
    k: int
    exact: bool


@dataclass(frozen=True)
class TrimFill:
    """Trim-and-fill: ``k0`` studies imputed on ``side`` and the model refitted with them.

    ``estimate``, ``se``, ``ci_low``, ``ci_high``, ``z``, ``p`` are the filled
    model's (``model``, z test); ``yi``, ``vi`` and ``filled`` list the
    augmented data, observed studies first in input order.
    """

    k0: int
    se_k0: float
    side: str
    estimator: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p: float
    model: PoolResult
    yi: tuple[float, ...]
    vi: tuple[float, ...]
    filled: tuple[bool, ...]


def _egger_design(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(y)), np.sqrt(v)])


def regtest(yi, vi, method: str = "REML", hksj: bool = False, model: str = "rma") -> RegTest:
    """Egger's regression test for funnel plot asymmetry (metafor ``regtest``).

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances.
    method, hksj
        The model's tau^2 estimator and test (``model="rma"``).
    model : {"rma", "lm"}
        "rma": metafor's default, ``rma(yi, vi, mods = ~ sqrt(vi))`` with this
        method and test (k >= 3, or k >= 2 for FE). "lm": the classical Egger
        test, weighted least squares with weights 1/vi and a t(k - 2) test.

    Returns
    -------
    RegTest

    Raises
    ------
    PoolingError
        Too few studies, or all standard errors equal (no slope to estimate).
    """
    check_method(method)
    if model not in ("rma", "lm"):
        raise PoolingError(f"model must be 'rma' or 'lm', not {model!r}")
    y, v = as_arrays(yi, vi)
    X = _egger_design(y, v)
    if model == "rma":
        try:
            fitted = fit_moderators(y, v, X, ("intrcpt", "sei"), method, hksj)
        except PoolingError as e:
            raise PoolingError(f"Egger's test cannot be fitted: {e}") from None
        return RegTest(
            z=fitted.z_or_t[1], p=fitted.p[1], df=fitted.t_df, slope=fitted.estimate[1], slope_se=fitted.se[1],
            limit_estimate=fitted.estimate[0], limit_se=fitted.se[0], limit_ci_low=fitted.ci_low[0],
            limit_ci_high=fitted.ci_high[0],
            tau2=fitted.tau2, model=model, method=method, k=len(y),
        )
    k = len(y)
    if k < 3:
        raise PoolingError("the classical Egger test (model='lm') needs at least 3 studies")
    d = Design(y, v, X)
    w = 1 / v
    b, inv, r = d.wls(w)
    b, inv = d.coefficients(b, inv)
    df = k - 2
    se = np.sqrt(np.diag(inv) * float(np.dot(w, r * r)) / df)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = b / se
    crit = float(dist.t_isf(0.025, df))
    return RegTest(
        z=float(t[1]), p=float(2 * dist.t_sf(abs(t[1]), df)), df=df, slope=float(b[1]), slope_se=float(se[1]),
        limit_estimate=float(b[0]), limit_se=float(se[0]), limit_ci_low=float(b[0] - crit * se[0]),
        limit_ci_high=float(b[0] + crit * se[0]),
        tau2=None, model=model, method="FE", k=k,
    )


def ranktest(yi, vi) -> RankTest:
    """Begg and Mazumdar's rank correlation test (metafor ``ranktest``).

    Kendall's tau-b between (yi - theta) / sqrt(vi - 1/sum(1/vi)), theta the
    common-effect estimate, and vi. The p-value is exact when neither has ties
    (R ``cor.test(method="kendall", exact=TRUE)``), else the normal
    approximation without continuity correction.

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances, k >= 2.

    Returns
    -------
    RankTest
    """
    y, v = as_arrays(yi, vi)
    k = len(y)
    if k < 2:
        raise PoolingError("the rank correlation test needs at least 2 studies")
    w = 1 / v
    theta = pool_arrays(y, v, "FE", False, with_ci=False).estimate
    deviates = (y - theta) / np.sqrt(v - 1 / w.sum())
    exact = len(np.unique(deviates)) == k and len(np.unique(v)) == k
    res = stats.kendalltau(deviates, v, method="exact" if exact else "asymptotic")
    return RankTest(tau=float(res.statistic), p=float(res.pvalue), k=k, exact=exact)


def trimfill(yi, vi, method: str = "REML", side: str | None = None, estimator: str = "L0") -> TrimFill:
    """Duval and Tweedie's trim-and-fill (metafor ``trimfill``, estimator L0).

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances, k >= 2.
    method : str
        tau^2 estimator for every fit (the trimmed ones and the filled model).
    side : {"left", "right"}, optional
        Where studies are missing. Default: from the sign of Egger's slope
        (``rma(yi, vi, mods = ~ sqrt(vi), method=method)``): negative means
        studies are missing on the right.
    estimator : {"L0"}
        Only L0, metafor's default.

    Returns
    -------
    TrimFill
        k0 rounded at each iteration (half to even, as R's ``round``); with
        k0 = 0 the model is the original one.

    Raises
    ------
    PoolingError
        k < 2, or ``side`` not given when Egger's slope cannot be estimated.
    """
    check_method(method)
    if estimator != "L0":
        raise PoolingError(f"only the L0 estimator is implemented, not {estimator!r}")
    y, v = as_arrays(yi, vi)
    k = len(y)
    if k < 2:
        raise PoolingError("trim-and-fill needs at least 2 studies")
    if side is None:
        try:
            slope = fit_moderators(y, v, _egger_design(y, v), ("intrcpt", "sei"), method, False).estimate[1]
        except PoolingError as e:
            raise PoolingError(f"cannot choose the side for trim-and-fill ({e}); give side='left' or 'right'") from None
        side = "right" if slope < 0 else "left"
    elif side not in ("left", "right"):
        raise PoolingError(f"side must be 'left' or 'right', not {side!r}")
    flip = -1.0 if side == "right" else 1.0
    order = np.argsort(flip * y, kind="stable")
    ys, vs = flip * y[order], v[order]
    k0, k0_prev, beta, se_k0 = 0, -1, math.nan, math.nan
    for _ in range(100):
        if k0 == k0_prev:
            break
        k0_prev = k0
        beta = pool_arrays(ys[:k - k0], vs[:k - k0], method, False, with_ci=False).estimate
        centred = ys - beta
        signed = np.sign(centred) * stats.rankdata(np.abs(centred), method="ordinal")
        sr = float(signed[signed > 0].sum())
        raw = (4 * sr - k * (k + 1)) / (2 * k - 1)
        var_sr = (k * (k + 1) * (2 * k + 1) + 10 * raw**3 + 27 * raw**2 + 17 * raw - 18 * k * raw**2
                  - 18 * k * raw + 6 * k**2 * raw) / 24
        se_k0 = 4 * math.sqrt(var_sr) / (2 * k - 1) if var_sr >= 0 else math.nan
        k0 = max(0, int(np.round(raw)))
    else:
        raise PoolingError("trim-and-fill did not converge in 100 iterations")
    if k0 > 0:
        fill = flip * (2 * beta - ys[k - k0:])
        y_all, v_all = np.concatenate([y, fill]), np.concatenate([v, vs[k - k0:]])
    else:
        y_all, v_all = y, v
    res = pool_arrays(y_all, v_all, method, False)
    return TrimFill(
        k0=k0, se_k0=max(0.0, se_k0) if math.isfinite(se_k0) else se_k0, side=side, estimator=estimator,
        estimate=res.estimate, se=res.se, ci_low=res.ci_low, ci_high=res.ci_high, z=res.z_or_t, p=res.p,
        model=res, yi=tuple(map(float, y_all)), vi=tuple(map(float, v_all)),
        filled=(False,) * k + (True,) * k0,
    )
