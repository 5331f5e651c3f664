"""Pooling: inverse-variance common- and random-effects models, Mantel-Haenszel,
and subgroups by disorder, following metafor's definitions.

* ``pool(yi, vi, method="REML", hksj=False) -> PoolResult`` is ``rma.uni(yi, vi,
  method=...)`` with ``test="z"`` (default) or ``test="knha"`` (``hksj=True``).
* ``pool_mh(events_t, n_t, events_c, n_c, measure="OR"|"RR") -> PoolResult`` is
  ``rma.mh``.
* ``pool_by_disorder(effects_df, ...) -> SubgroupAnalysis`` pools each disorder
  separately, pools all studies overall, and tests for subgroup differences.

Where metafor and statsmodels differ we follow metafor, and say so where it
matters: tau^2 is truncated at 0 (statsmodels' DL is not); I^2/H^2 of random-
effects models come from tau^2 and the "typical" within-study variance, not
from Q; REML/ML solve the score equation exactly (metafor's Fisher scoring
stops when tau^2 changes by < 1e-5, so its printed values agree to ~1e-4);
the prediction interval uses the normal quantile unless HKSJ is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .effects import two_by_two
from .errors import ReviewkitError

METHODS = ("FE", "DL", "REML", "PM", "ML")


class PoolingError(ReviewkitError):
    """Inputs that cannot be pooled (no studies, mismatched lengths, bad variances)."""


@dataclass(frozen=True)
class PoolResult:
    """One fitted model, on the analysis scale (log scale for ratios).

    ``i2`` is in percent and ``h2`` a ratio, as metafor prints them. ``tau2``,
    ``i2``, ``h2``, ``q*`` and the prediction interval are None where they are
    undefined: k = 1 (the study itself), and the PI of a common-effect or MH
    model. ``z_or_t`` is a t statistic with ``t_df`` degrees of freedom when
    ``hksj`` is True, else a z statistic (``t_df`` None). ``tau2_ci_*`` and
    ``i2_ci_*`` are the 95% Q-profile confidence interval of tau^2 and the I^2
    it implies (metafor's ``confint``; see ``heterogeneity_ci``), for
    random-effects models with k >= 2.
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z_or_t: float
    p: float
    tau2: float | None
    i2: float | None
    h2: float | None
    q: float | None
    q_df: int | None
    q_p: float | None
    pi_low: float | None
    pi_high: float | None
    k: int
    method: str
    hksj: bool
    t_df: int | None = None
    tau2_ci_low: float | None = None
    tau2_ci_high: float | None = None
    i2_ci_low: float | None = None
    i2_ci_high: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HeterogeneityCI:
    """Q-profile confidence intervals (Viechtbauer 2007), each ``(low, high)``:
    tau^2, tau, I^2 (percent) and H^2, as metafor's ``confint(rma)`` gives them."""

    tau2: tuple[float, float]
    tau: tuple[float, float]
    i2: tuple[float, float]
    h2: tuple[float, float]
    level: float


def _arrays(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if y.ndim != 1 or y.shape != v.shape:
        raise PoolingError(f"yi and vi must be 1-D and the same length (got {y.shape} and {v.shape})")
    if len(y) == 0:
        raise PoolingError("no studies to pool (k = 0)")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise PoolingError("yi and vi must be finite numbers")
    if np.any(v <= 0):
        raise PoolingError(f"sampling variances must be > 0 (study {int(np.argmin(v)) + 1} has vi = {v.min()})")
    return y, v


def _weighted_mean(y: np.ndarray, w: np.ndarray) -> float:
    # Centre on one study first so Q stays exact when the yi agree to many
    # digits (metafor's test_misc_calc_q.r: Planck-constant measurements).
    y0 = y[0]
    return float(y0 + np.sum(w * (y - y0)) / np.sum(w))


def cochran_q(y: np.ndarray, v: np.ndarray) -> float:
    """Q = sum w (y - mean_w)^2 with w = 1/v: the common-effect Q, in every model."""
    w = 1 / v
    return float(np.sum(w * (y - _weighted_mean(y, w)) ** 2))


def _tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / v
    c = w.sum() - np.sum(w**2) / w.sum()
    return max(0.0, float((cochran_q(y, v) - (len(y) - 1)) / c))


def _positive_root(f, start: float) -> float:
    """tau^2 solving f(tau2) = 0 for f decreasing through zero, or 0 if f(0) <= 0."""
    if f(0.0) <= 0:
        return 0.0
    hi = max(start, 1e-8)
    while f(hi) > 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def _tau2_pm(y: np.ndarray, v: np.ndarray) -> float:
    """Paule-Mandel: generalised Q(tau2) = k - 1 (metafor uses uniroot; we solve to machine precision)."""
    k = len(y)

    def f(t):
        w = 1 / (v + t)
        return float(np.sum(w * (y - _weighted_mean(y, w)) ** 2)) - (k - 1)

    return _positive_root(f, float(np.var(y, ddof=1)))


def _tau2_likelihood(y: np.ndarray, v: np.ndarray, reml: bool) -> float:
    """ML or REML tau^2: the root of the (restricted) score, 0 if the score at 0 is <= 0.

    Score x 2: ML  sum w^2 (y - mu)^2 - sum w;
               REML sum w^2 (y - mu)^2 - tr(P), tr(P) = sum w - sum w^2 / sum w.
    metafor reaches the same stationary point by Fisher scoring from the HE
    estimate (stopping at |change| < 1e-5).
    """

    def score(t):
        w = 1 / (v + t)
        r = y - _weighted_mean(y, w)
        trace = w.sum() - np.sum(w**2) / w.sum() if reml else w.sum()
        return float(np.sum(w**2 * r**2) - trace)

    return _positive_root(score, float(np.var(y, ddof=1)))


def _typical_variance(v: np.ndarray) -> float:
    """Higgins and Thompson's typical within-study variance, from which I^2 and H^2 follow."""
    w = 1 / v
    return float((len(v) - 1) * w.sum() / (w.sum() ** 2 - np.sum(w**2)))


def heterogeneity_ci(yi, vi, level: float = 0.95) -> HeterogeneityCI:
    """The Q-profile confidence interval of tau^2 and the tau, I^2 and H^2 it implies.

    The bounds are where the generalised Q, sum (y - mu(tau2))^2 / (v + tau2),
    equals the upper and lower (1 - level)/2 quantiles of chi^2 with k - 1 df; a
    bound is 0 when Q at tau^2 = 0 is already below its quantile. It does not
    depend on the tau^2 estimator (metafor's ``confint`` on any ``rma.uni``
    random-effects model). Needs k >= 2.
    """
    y, v = _arrays(yi, vi)
    k = len(y)
    if k < 2:
        raise PoolingError("a confidence interval for tau^2 needs at least 2 studies")
    if not 0 < level < 1:
        raise PoolingError(f"level must be between 0 and 1 (got {level})")

    def q_minus(crit: float):
        def f(t):
            w = 1 / (v + t)
            return float(np.sum(w * (y - _weighted_mean(y, w)) ** 2)) - crit
        return f

    alpha = 1 - level
    start = float(np.var(y, ddof=1))
    low = _positive_root(q_minus(float(stats.chi2.ppf(1 - alpha / 2, k - 1))), start)
    high = _positive_root(q_minus(float(stats.chi2.ppf(alpha / 2, k - 1))), start)
    vt = _typical_variance(v)
    return HeterogeneityCI(
        tau2=(low, high), tau=(math.sqrt(low), math.sqrt(high)),
        i2=(100 * low / (low + vt), 100 * high / (high + vt)), h2=((low + vt) / vt, (high + vt) / vt), level=level,
    )


def _tau2(y: np.ndarray, v: np.ndarray, method: str) -> float:
    if method == "FE":
        return 0.0
    if method == "DL":
        return _tau2_dl(y, v)
    if method == "PM":
        return _tau2_pm(y, v)
    return _tau2_likelihood(y, v, reml=(method == "REML"))


def _heterogeneity(y: np.ndarray, v: np.ndarray, tau2: float, method: str) -> tuple[float, float, float, int, float]:
    """(I^2 %, H^2, Q, df, p(Q)) as metafor prints them."""
    k = len(y)
    q = cochran_q(y, v)
    df = k - 1
    q_p = float(stats.chi2.sf(q, df))
    if method == "FE":
        # Common-effect models print the Q-based versions.
        i2 = 100 * max(0.0, (q - df) / q) if q > 0 else 0.0
        return i2, q / df, q, df, q_p
    # metafor (man/print.rma.Rd): I^2 = tau^2 / (tau^2 + v~), H^2 = (tau^2 + v~) / v~,
    # v~ the Higgins-Thompson typical within-study variance. Equal to the Q-based
    # values only for DL; statsmodels/R meta report the Q-based ones.
    v_typical = _typical_variance(v)
    return 100 * tau2 / (tau2 + v_typical), (tau2 + v_typical) / v_typical, q, df, q_p


def _single_study(y: float, v: float, method: str) -> PoolResult:
    se = math.sqrt(v)
    z = y / se
    return PoolResult(
        estimate=y, se=se, ci_low=y - stats.norm.ppf(0.975) * se, ci_high=y + stats.norm.ppf(0.975) * se,
        z_or_t=z, p=float(2 * stats.norm.sf(abs(z))), tau2=None, i2=None, h2=None, q=None, q_df=None,
        q_p=None, pi_low=None, pi_high=None, k=1, method=method, hksj=False,
    )


def pool(yi, vi, method: str = "REML", hksj: bool = False) -> PoolResult:
    """Inverse-variance pooling of ``yi`` with sampling variances ``vi``.

    ``method``: FE (common effect), DL, REML, PM, ML. ``hksj``: Hartung-Knapp-
    Sidik-Jonkman, metafor's ``test="knha"``: se multiplied by
    ``sqrt(sum w*(y - mu)^2 / (k - 1))`` (not truncated at 1, as metafor), t
    with k - 1 df for the CI, the test and the prediction interval.

    With k = 1 the result is the study itself (z-based CI; no tau^2, I^2, Q or
    PI, and no HKSJ, which needs k >= 2).
    """
    if method not in METHODS:
        raise PoolingError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    y, v = _arrays(yi, vi)
    k = len(y)
    if k == 1:
        return _single_study(float(y[0]), float(v[0]), method)
    tau2 = _tau2(y, v, method)
    w = 1 / (v + tau2)
    mu = _weighted_mean(y, w)
    se = math.sqrt(1 / w.sum())
    t_df = None
    if hksj:
        t_df = k - 1
        se *= math.sqrt(float(np.sum(w * (y - mu) ** 2)) / t_df)
        crit = float(stats.t.ppf(0.975, t_df))
        stat = mu / se
        p = float(2 * stats.t.sf(abs(stat), t_df))
    else:
        crit = float(stats.norm.ppf(0.975))
        stat = mu / se
        p = float(2 * stats.norm.sf(abs(stat)))
    i2, h2, q, q_df, q_p = _heterogeneity(y, v, tau2, method)
    if method == "FE":
        pi_low = pi_high = None
        het_ci = None
    else:
        # metafor predict(): normal quantile (t(k-1) under HKSJ), se of mu included.
        half = crit * math.sqrt(se**2 + tau2)
        pi_low, pi_high = mu - half, mu + half
        het_ci = heterogeneity_ci(y, v)
    return PoolResult(
        estimate=mu, se=se, ci_low=mu - crit * se, ci_high=mu + crit * se, z_or_t=stat, p=p,
        tau2=None if method == "FE" else tau2, i2=i2, h2=h2, q=q, q_df=q_df, q_p=q_p,
        pi_low=pi_low, pi_high=pi_high, k=k, method=method, hksj=hksj, t_df=t_df,
        tau2_ci_low=het_ci.tau2[0] if het_ci else None, tau2_ci_high=het_ci.tau2[1] if het_ci else None,
        i2_ci_low=het_ci.i2[0] if het_ci else None, i2_ci_high=het_ci.i2[1] if het_ci else None,
    )


def pool_mh(events_t, n_t, events_c, n_c, measure: str = "OR") -> PoolResult:
    """Mantel-Haenszel common-effect log OR or log RR, as metafor's ``rma.mh``.

    No continuity correction for the MH estimate; tables with no events in
    either arm (or only events) are dropped (``drop00=TRUE``). Variance: Robins-
    Breslow-Greenland (OR), Greenland-Robins (RR). Q, I^2 (Q-based) and H^2 use
    the per-study inverse-variance estimates (escalc, +0.5 to tables with a
    zero) around the MH estimate, as ``rma.mh`` does.
    """
    if measure not in ("OR", "RR"):
        raise PoolingError(f"Mantel-Haenszel pooling is implemented for OR and RR, not {measure!r}")
    a, n1, c, n2 = (np.asarray(x, dtype=float) for x in (events_t, n_t, events_c, n_c))
    if not (a.shape == n1.shape == c.shape == n2.shape) or a.ndim != 1 or len(a) == 0:
        raise PoolingError("events_t, n_t, events_c, n_c must be non-empty and the same length")
    b, d = n1 - a, n2 - c
    keep = ~(((a == 0) & (c == 0)) | ((b == 0) & (d == 0)))
    a, b, c, d, n1, n2 = (x[keep] for x in (a, b, c, d, n1, n2))
    if len(a) == 0:
        raise PoolingError("every table has no events (or only events) in both arms; nothing to pool")
    n = n1 + n2
    if measure == "OR":
        r_i, s_i = a * d / n, b * c / n
        r, s = r_i.sum(), s_i.sum()
        p_i, q_i = (a + d) / n, (b + c) / n
        var = 0.5 * (np.sum(p_i * r_i) / r**2 + np.sum(p_i * s_i + q_i * r_i) / (r * s) + np.sum(q_i * s_i) / s**2)
    else:
        r, s = np.sum(a * n2 / n), np.sum(c * n1 / n)
        var = np.sum((n1 * n2 * (a + c) - a * c * n) / n**2) / (r * s)
    est, se = math.log(r / s), math.sqrt(var)
    z = est / se
    crit = float(stats.norm.ppf(0.975))
    per_study = [two_by_two(*cells, measure) for cells in zip(a, n1, c, n2)]
    y = np.array([e[0] for e in per_study])
    v = np.array([e[1] for e in per_study])
    k = len(y)
    q = i2 = h2 = q_p = None
    q_df = None
    if k > 1:
        q = float(np.sum((y - est) ** 2 / v))
        q_df = k - 1
        q_p = float(stats.chi2.sf(q, q_df))
        i2 = 100 * max(0.0, (q - q_df) / q) if q > 0 else 0.0
        h2 = q / q_df
    return PoolResult(
        estimate=est, se=se, ci_low=est - crit * se, ci_high=est + crit * se, z_or_t=z,
        p=float(2 * stats.norm.sf(abs(z))), tau2=None, i2=i2, h2=h2, q=q, q_df=q_df, q_p=q_p,
        pi_low=None, pi_high=None, k=k, method="MH", hksj=False,
    )


@dataclass(frozen=True)
class SubgroupAnalysis:
    """Per-disorder pooling, the overall model, and the test for subgroup differences.

    ``subgroups[d]`` is None where disorder d has no study in the analysis (the
    forest plot shows "no comparative study"). ``studies`` is the effects frame
    used (rows in disorder order) with ``weight`` added: percent weight within
    its disorder's model. ``q_between`` tests whether the subgroup estimates
    differ: a common-effect Q across the subgroup estimates and their se (each
    subgroup with its own tau^2; RevMan's and R meta's default), df = number of
    subgroups with k >= 1 minus 1; None when fewer than two subgroups have data.
    """

    measure: str
    method: str
    hksj: bool
    subgroups: Mapping[str, PoolResult | None]
    overall: PoolResult
    q_between: float | None
    df_between: int | None
    p_between: float | None
    studies: pd.DataFrame = field(compare=False, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per disorder plus 'overall': k and every PoolResult field (NaN where undefined)."""
        rows = []
        for name, res in [*self.subgroups.items(), ("overall", self.overall)]:
            row = {"subgroup": name, "k": 0}
            if res is not None:
                row.update(res.as_dict())
            rows.append(row)
        return pd.DataFrame(rows).set_index("subgroup")


def _study_weights(y: np.ndarray, v: np.ndarray, res: PoolResult) -> np.ndarray:
    w = 1 / (v + (res.tau2 or 0.0))
    return 100 * w / w.sum()


def pool_by_disorder(
    effects_df: pd.DataFrame,
    method: str = "REML",
    hksj: bool = False,
    disorders: Sequence[str] | None = None,
) -> SubgroupAnalysis:
    """Pool ``effects_df`` (from ``effects.effect_sizes``) by its ``disorder`` column.

    Needs columns ``disorder, yi, vi, yi_measure``; every row is pooled, so
    select the rows of one analysis first (e.g. ``extraction.analysis_rows``),
    which also guarantees each set of participants enters once. ``disorders``
    (e.g. the protocol's search keys) fixes the subgroups and their order, so a
    disorder without a study still has its (empty) subgroup; by default the
    subgroups are the disorders in ``effects_df``, in order of appearance.
    """
    for col in ("disorder", "yi", "vi", "yi_measure"):
        if col not in effects_df.columns:
            raise PoolingError(f"effects frame has no column {col!r}; compute it with effects.effect_sizes")
    if effects_df.empty:
        raise PoolingError("no studies to pool (the effects frame is empty)")
    measures = sorted(set(effects_df["yi_measure"]))
    if len(measures) != 1:
        raise PoolingError(f"effects are on different scales ({', '.join(measures)}); pool one measure at a time")
    if disorders is None:
        disorders = list(dict.fromkeys(effects_df["disorder"]))
    unknown = sorted(set(effects_df["disorder"]) - set(disorders))
    if unknown:
        raise PoolingError(f"disorder(s) {', '.join(map(str, unknown))} not among {', '.join(disorders)}")

    subgroups: dict[str, PoolResult | None] = {}
    parts = []
    for disorder in disorders:
        rows = effects_df[effects_df["disorder"] == disorder]
        if rows.empty:
            subgroups[disorder] = None
            continue
        res = pool(rows["yi"], rows["vi"], method=method, hksj=hksj)
        subgroups[disorder] = res
        parts.append(rows.assign(weight=_study_weights(rows["yi"].to_numpy(float), rows["vi"].to_numpy(float), res)))
    studies = pd.concat(parts)
    overall = pool(studies["yi"], studies["vi"], method=method, hksj=hksj)

    fitted = [r for r in subgroups.values() if r is not None]
    q_between = df_between = p_between = None
    if len(fitted) >= 2:
        q_between = cochran_q(np.array([r.estimate for r in fitted]), np.array([r.se**2 for r in fitted]))
        df_between = len(fitted) - 1
        p_between = float(stats.chi2.sf(q_between, df_between))
    return SubgroupAnalysis(
        measure=measures[0], method=method, hksj=hksj, subgroups=subgroups, overall=overall,
        q_between=q_between, df_between=df_between, p_between=p_between, studies=studies,
    )
