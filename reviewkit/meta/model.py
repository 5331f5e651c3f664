"""Inverse-variance models as metafor's ``rma.uni`` fits them.

* ``pool(yi, vi, method="REML", hksj=False) -> PoolResult``: ``rma(yi, vi,
  method=...)`` with ``test="z"``, or ``test="knha"`` when ``hksj``.
* ``confint_tau2(yi, vi, method="REML", level=0.95) -> Tau2CI``: ``confint(rma)``,
  the Q-profile intervals of tau^2, tau, I^2 and H^2.
* ``metareg(yi, vi, mods, method="REML", hksj=False) -> MetaRegression``:
  ``rma(yi, vi, mods = ~ mods)`` with one moderator, numeric or categorical.
* ``back_transform(result, measure) -> BackTransformed``: estimate, CI and PI on
  the natural scale (``predict(res, transf=exp)``, ``transf.ilogit`` for PLO).

Where metafor iterates we solve to machine precision (``tau2``), so results
agree with metafor run to convergence (``control=list(threshold=1e-12)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special

from ..effects import RATIO_MEASURES
from ..errors import ReviewkitError
from . import dist
from . import tau2 as _tau2
from .tau2 import METHODS, Design

# metafor sets the Knapp-Hartung factor to 0 when the weighted residual sum of
# squares is at most .Machine$double.eps (e.g. identical yi): se 0, CI [b, b].
DOUBLE_EPS = float(np.finfo(float).eps)
Z975 = float(dist.norm_isf(0.025))


class PoolingError(ReviewkitError):
    """Inputs that cannot be pooled (no studies, mismatched lengths, bad variances, a bad model)."""


@dataclass(frozen=True)
class PoolResult:
    """One fitted model, on the analysis scale (log scale for ratios, logit for PLO).

    ``i2`` is in percent and ``h2`` a ratio, as metafor prints them. ``tau2``,
    ``i2``, ``h2``, ``q*`` and the prediction interval are None where they are
    undefined: k = 1 (the study itself), and the PI of a common-effect, MH or
    Peto model. ``z_or_t`` is a t statistic with ``t_df`` degrees of freedom
    when ``hksj`` is True, else a z statistic (``t_df`` None). ``tau2_se`` is
    metafor's ``se.tau2``. ``tau2_ci_*`` and ``i2_ci_*`` are the 95% Q-profile
    intervals (``confint_tau2``) of random-effects models with k >= 2. Where a
    statistic is undefined for valid data (e.g. a Mantel-Haenszel odds ratio
    with no event in any control arm) it is NaN and ``notes`` says why.
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
    tau2_se: float | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Tau2CI:
    """Q-profile confidence intervals (Viechtbauer 2007) as metafor's ``confint(rma)`` gives them.

    ``tau2``, ``i2`` (percent) and ``h2`` are the model's estimates; the bounds
    do not depend on the estimator. A bound is 0 when the generalised Q at
    tau^2 = 0 is already below its chi^2 quantile.
    """

    tau2: float
    tau2_low: float
    tau2_high: float
    tau_low: float
    tau_high: float
    i2: float
    i2_low: float
    i2_high: float
    h2: float
    h2_low: float
    h2_high: float
    level: float
    method: str
    k: int


@dataclass(frozen=True)
class MetaRegression:
    """A mixed-effects meta-regression (``rma(yi, vi, mods = ...)``) with one moderator.

    Per-coefficient tuples follow ``coef_names`` (``intrcpt`` first; a
    categorical moderator gives one coefficient per level after the first,
    the reference). ``qm`` is the omnibus test of the moderator coefficients:
    chi^2 with ``qm_df[0]`` df, or under HKSJ an F statistic with ``qm_df``
    (df1, df2). ``q`` is the test for residual heterogeneity (QE), ``r2`` the
    percent of tau^2 accounted for (None for FE: adjusted R^2 of the weighted
    least squares fit, as metafor).
    """

    coef_names: tuple[str, ...]
    estimate: tuple[float, ...]
    se: tuple[float, ...]
    z_or_t: tuple[float, ...]
    p: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    qm: float
    qm_df: tuple[int, int | None]
    qm_p: float
    q: float
    q_df: int
    q_p: float
    tau2: float | None
    tau2_se: float | None
    i2: float
    h2: float
    r2: float
    k: int
    method: str
    hksj: bool
    t_df: int | None = None

    def table(self) -> pd.DataFrame:
        """One row per coefficient: estimate, se, z_or_t, p, ci_low, ci_high."""
        return pd.DataFrame({c: getattr(self, c) for c in ("estimate", "se", "z_or_t", "p", "ci_low", "ci_high")},
                            index=pd.Index(self.coef_names, name="coefficient"))


@dataclass(frozen=True)
class BackTransformed:
    """A pooled estimate with its CI and PI on the natural scale (None where the model has none)."""

    estimate: float
    ci_low: float
    ci_high: float
    pi_low: float | None
    pi_high: float | None
    scale: str


@dataclass(frozen=True)
class Fit:
    """Everything an ``rma.uni`` fit reports, for any model matrix (internal to reviewkit.meta)."""

    beta: np.ndarray
    se: np.ndarray
    vb: np.ndarray
    stat: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    crit: float
    tau2: float
    tau2_se: float
    q: float
    q_df: int
    q_p: float
    i2: float
    h2: float
    vt: float
    t_df: int | None


def check_method(method: str) -> str:
    if method not in METHODS:
        raise PoolingError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return method


def as_arrays(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    """yi and vi as 1-D float arrays of one length, finite, vi > 0; else PoolingError."""
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


def cochran_q(y: np.ndarray, v: np.ndarray) -> float:
    """Q = sum w (y - mean_w)^2 with w = 1/v: the common-effect Q, in every model."""
    return Design(y, v).q(0.0)


def fit(d: Design, method: str, hksj: bool, level: float = 0.95) -> Fit:
    """Fit ``rma.uni`` on a design with k > p (k = p for FE); the heart of every model in reviewkit.meta."""
    k, p = d.k, d.p
    tau2, tau2_se = _tau2.estimate(d, method)
    w = 1 / (d.v + tau2)
    beta, vb, r = d.wls(w)
    alpha = 1 - level
    t_df = None
    if hksj:
        rss = float(np.dot(w, r * r))
        with np.errstate(divide="ignore"):  # k = p (a saturated FE model): inf, as metafor
            vb = (0.0 if rss <= DOUBLE_EPS else np.float64(rss) / (k - p)) * vb
        t_df = k - p
        crit = float(dist.t_isf(alpha / 2, t_df))
    else:
        crit = float(dist.norm_isf(alpha / 2))
    beta, vb = d.coefficients(beta, vb)
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / se
    pval = 2 * (dist.t_sf(np.abs(stat), t_df) if hksj else dist.norm_sf(np.abs(stat)))
    # Heterogeneity always from the common-effect (W = 1/vi) residuals.
    w0 = 1 / d.v
    _, inv0, r0 = d.wls(w0)
    q = max(0.0, float(np.dot(w0, r0 * r0)))
    q_df = k - p
    if q_df == 0:  # a saturated common-effect model: metafor prints QE = 0, p = 1, I2 = 0, H2 = 1
        q, q_p, vt, i2, h2 = 0.0, 1.0, 0.0, 0.0, 1.0
    else:
        q_p = dist.chi2_sf(q, q_df)
        # vt = (k - p) / tr(P); for p = 1, tr(P) = sum w - sum w^2 / sum w.
        tr_p = w0.sum() - (np.dot(w0, w0) * inv0[0, 0] if p == 1 else np.trace(inv0 @ d.quad(w0 * w0)))
        vt = q_df / float(tr_p)
        if method == "FE":
            # Common-effect models print the Q-based versions (metafor print.rma.uni).
            i2 = 100 * max(0.0, (q - q_df) / q) if q > 0 else 0.0
            h2 = q / q_df
        else:
            # I^2 = tau^2 / (tau^2 + vt), vt the "typical" within-study variance:
            # equal to the Q-based value only for DL (R meta, statsmodels print that one).
            i2 = 100 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1
    return Fit(beta=beta, se=se, vb=vb, stat=stat, p=pval, ci_low=beta - crit * se, ci_high=beta + crit * se,
               crit=crit, tau2=tau2, tau2_se=tau2_se, q=q, q_df=q_df, q_p=q_p, i2=i2, h2=h2, vt=vt, t_df=t_df)


def q_profile(d: Design, level: float = 0.95) -> tuple[float, float]:
    """(low, high) Q-profile bounds of tau^2: where the generalised Q meets the chi^2(k - p) quantiles."""
    alpha = 1 - level
    df = d.k - d.p
    high = _tau2.q_root(d, float(dist.chi2_ppf(alpha / 2, df)))
    low = _tau2.q_root(d, float(dist.chi2_isf(alpha / 2, df)))
    return low, high


def single_study(y: float, v: float, method: str) -> PoolResult:
    """k = 1: the study itself with a z-based CI (metafor forces test="z" and prints Q = 0, I^2 = 0)."""
    se = math.sqrt(v)
    z = y / se
    return PoolResult(
        estimate=y, se=se, ci_low=y - Z975 * se, ci_high=y + Z975 * se, z_or_t=z, p=float(2 * dist.norm_sf(abs(z))),
        tau2=None, i2=None, h2=None, q=None, q_df=None, q_p=None, pi_low=None, pi_high=None, k=1, method=method,
        hksj=False,
    )


def result(d: Design, f: Fit, method: str, hksj: bool, het_ci: tuple[float, float] | None = None) -> PoolResult:
    """A PoolResult from an intercept-only fit (prediction interval as metafor's predict())."""
    mu, se = float(f.beta[0]), float(f.se[0])
    fe = method == "FE"
    half = 0.0 if fe else f.crit * math.sqrt(se**2 + f.tau2)  # no prediction interval for a common effect
    notes = ("HKSJ: the weighted residuals are all 0 (identical yi), so se = 0 and the CI is the estimate "
             "itself, as in metafor",) if hksj and se == 0 else ()
    return PoolResult(
        estimate=mu, se=se, ci_low=float(f.ci_low[0]), ci_high=float(f.ci_high[0]), z_or_t=float(f.stat[0]),
        p=float(f.p[0]), tau2=None if fe else f.tau2, i2=f.i2, h2=f.h2, q=f.q, q_df=f.q_df, q_p=f.q_p,
        pi_low=None if fe else mu - half, pi_high=None if fe else mu + half, k=d.k, method=method, hksj=hksj,
        t_df=f.t_df, tau2_se=None if fe else f.tau2_se,
        tau2_ci_low=het_ci[0] if het_ci else None, tau2_ci_high=het_ci[1] if het_ci else None,
        i2_ci_low=100 * het_ci[0] / (f.vt + het_ci[0]) if het_ci else None,
        i2_ci_high=100 * het_ci[1] / (f.vt + het_ci[1]) if het_ci else None, notes=notes,
    )


def pool_arrays(y: np.ndarray, v: np.ndarray, method: str, hksj: bool, with_ci: bool = True) -> PoolResult:
    """``pool`` on validated arrays; ``with_ci=False`` skips the Q-profile interval (leave1out, cumul)."""
    if len(y) == 1:
        return single_study(float(y[0]), float(v[0]), method)
    d = Design(y, v)
    f = fit(d, method, hksj)
    return result(d, f, method, hksj, q_profile(d) if with_ci and method != "FE" else None)


def pool(yi, vi, method: str = "REML", hksj: bool = False) -> PoolResult:
    """Inverse-variance pooling of ``yi`` with sampling variances ``vi`` (metafor ``rma.uni``).

    Parameters
    ----------
    yi, vi : array-like
        Effects on the analysis scale and their sampling variances (> 0).
    method : {"FE", "DL", "REML", "PM", "ML", "HE", "SJ"}
        FE is the common-effect model; the others estimate tau^2 as metafor does
        (ML and REML at the global maximum of the likelihood).
    hksj : bool
        Hartung-Knapp-Sidik-Jonkman (metafor ``test="knha"``): se multiplied by
        sqrt(sum w (y - mu)^2 / (k - 1)), not truncated at 1, and t(k - 1) for
        the CI, the test and the prediction interval. When that sum is at most
        machine epsilon (identical yi) the factor is 0: se 0 and CI [mu, mu].

    Returns
    -------
    PoolResult
        With k = 1, the study itself (z-based CI; no tau^2, I^2, Q or PI, and
        no HKSJ, which needs k >= 2).
    """
    check_method(method)
    y, v = as_arrays(yi, vi)
    return pool_arrays(y, v, method, hksj)


def confint_tau2(yi, vi, method: str = "REML", level: float = 0.95) -> Tau2CI:
    """Q-profile confidence intervals for tau^2 and I^2 (metafor ``confint(rma(yi, vi, method=method))``).

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances, k >= 2.
    method : str
        A random-effects estimator (not FE); it sets the point estimates only.
    level : float
        Confidence level, 0 < level < 1.

    Returns
    -------
    Tau2CI
        Bounds where the generalised Q, sum (yi - mu(tau2))^2 / (vi + tau2), meets
        the upper and lower (1 - level)/2 quantiles of chi^2(k - 1); I^2 and H^2
        bounds from tau^2 and the typical within-study variance. metafor stops
        at ``tau2.max`` = max(100, 10 tau2) and prints ">"; these bounds are
        not capped.
    """
    check_method(method)
    if method == "FE":
        raise PoolingError("a common-effect (FE) model has no tau^2 to give an interval for")
    if not 0 < level < 1:
        raise PoolingError(f"level must be between 0 and 1 (got {level})")
    y, v = as_arrays(yi, vi)
    if len(y) < 2:
        raise PoolingError("a confidence interval for tau^2 needs at least 2 studies")
    d = Design(y, v)
    f = fit(d, method, False)
    low, high = q_profile(d, level)
    vt = f.vt
    return Tau2CI(
        tau2=f.tau2, tau2_low=low, tau2_high=high, tau_low=math.sqrt(low), tau_high=math.sqrt(high),
        i2=f.i2, i2_low=100 * low / (vt + low), i2_high=100 * high / (vt + high),
        h2=f.h2, h2_low=low / vt + 1, h2_high=high / vt + 1, level=level, method=method, k=len(y),
    )


def _collinear(X: np.ndarray) -> bool:
    """True if a column is (nearly) a combination of the earlier ones (R lm's QR, tolerance 1e-7)."""
    q, r = np.linalg.qr(X)
    norms = np.linalg.norm(X, axis=0)
    return bool(np.any(np.abs(np.diag(r)) < 1e-7 * np.where(norms > 0, norms, 1.0)))


def moderator_matrix(mods, levels: Sequence | None = None, name: str = "mods") -> tuple[np.ndarray, tuple[str, ...]]:
    """The model matrix of one moderator: intercept plus the moderator, or dummies of its levels.

    Numeric ``mods`` enter as they are; anything else is a factor whose first
    level (``levels``, else sorted, as R's ``factor``) is the reference.
    """
    values = pd.Series(list(mods) if not isinstance(mods, pd.Series) else mods.to_numpy())
    k = len(values)
    if values.isna().any():
        raise PoolingError(f"moderator {name!r} has missing values")
    if levels is None and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        x = values.to_numpy(dtype=float)
        if not np.all(np.isfinite(x)):
            raise PoolingError(f"moderator {name!r} must be finite numbers")
        return np.column_stack([np.ones(k), x]), ("intrcpt", name)
    labels = values.astype(str)
    order = [str(lv) for lv in levels] if levels is not None else sorted(set(labels))
    unknown = sorted(set(labels) - set(order))
    if unknown:
        raise PoolingError(f"moderator {name!r} has values {', '.join(unknown)} not among its levels")
    used = [lv for lv in order if lv in set(labels)]
    dummies = [(labels == lv).to_numpy(dtype=float) for lv in used[1:]]
    return np.column_stack([np.ones(k), *dummies]), ("intrcpt", *(f"{name}{lv}" for lv in used[1:]))


def fit_moderators(y: np.ndarray, v: np.ndarray, X: np.ndarray, names: tuple[str, ...], method: str,
                   hksj: bool) -> MetaRegression:
    """``rma(yi, vi, mods = X[, -1])`` on validated arrays (shared by metareg, regtest and subgroup tests)."""
    k, p = X.shape
    if p < 2:
        raise PoolingError("the moderator takes a single value: nothing to regress on")
    if _collinear(X):
        raise PoolingError("the moderator is collinear with the intercept (a constant, or levels that coincide)")
    if k < p + (method != "FE"):  # a common-effect model may be saturated, one with tau^2 may not
        more = "more than" if method != "FE" else "at least"
        raise PoolingError(f"a meta-regression with {p} coefficients needs {more} {p} studies (k = {k})")
    d = Design(y, v, X)
    f = fit(d, method, hksj)
    m = p - 1
    try:
        sub = f.vb[1:, 1:]
        np.linalg.cholesky(sub)
        qm = float(f.beta[1:] @ np.linalg.solve(sub, f.beta[1:]))
    except np.linalg.LinAlgError:  # HKSJ factor 0: metafor's chol() fails and QM is NA
        qm = math.nan
    if hksj:
        qm /= m
        qm_df: tuple[int, int | None] = (m, k - p)
        qm_p = float(dist.f_sf(qm, m, k - p))
    else:
        qm_df = (m, None)
        qm_p = float(dist.chi2_sf(qm, m))
    if method == "FE":
        q0 = cochran_q(y, v)
        r2 = (math.nan if k == p else 0.0 if np.all(y == y[0])
              else max(0.0, 100 * (1 - (f.q / q0) * (k - 1) / (k - p))))
    else:
        tau2_0 = fit(Design(y, v), method, hksj).tau2
        r2 = 0.0 if tau2_0 == 0 else max(0.0, 100 * (tau2_0 - f.tau2) / tau2_0)
    return MetaRegression(
        coef_names=names, estimate=tuple(map(float, f.beta)), se=tuple(map(float, f.se)),
        z_or_t=tuple(map(float, f.stat)), p=tuple(map(float, f.p)), ci_low=tuple(map(float, f.ci_low)),
        ci_high=tuple(map(float, f.ci_high)), qm=qm, qm_df=qm_df, qm_p=qm_p, q=f.q, q_df=f.q_df, q_p=f.q_p,
        tau2=None if method == "FE" else f.tau2, tau2_se=None if method == "FE" else f.tau2_se,
        i2=f.i2, h2=f.h2, r2=r2, k=k, method=method, hksj=hksj, t_df=f.t_df,
    )


def metareg(yi, vi, mods, method: str = "REML", hksj: bool = False, *, levels: Sequence | None = None,
            name: str = "mods") -> MetaRegression:
    """Meta-regression on one moderator (metafor ``rma(yi, vi, mods = ~ mods, method=..., test=...)``).

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances.
    mods : array-like
        One value per study: a number (e.g. year, dose) or a category (e.g.
        disorder), which enters as a factor.
    method : str
        tau^2 estimator for the residual heterogeneity (FE: none).
    hksj : bool
        Knapp-Hartung: t(k - p) tests and an F test for the moderator.
    levels : sequence, optional
        Order of a categorical moderator's levels; the first is the reference.
        Default: sorted.
    name : str
        Moderator name used in ``coef_names``.

    Returns
    -------
    MetaRegression
    """
    check_method(method)
    y, v = as_arrays(yi, vi)
    if len(mods) != len(y):
        raise PoolingError(f"mods has {len(mods)} values for {len(y)} studies")
    X, names = moderator_matrix(mods, levels, name)
    return fit_moderators(y, v, X, names, method, hksj)


def back_transform(res: PoolResult, measure: str) -> BackTransformed:
    """Estimate, CI and PI of ``res`` on the natural scale of ``measure``.

    Ratios (OR, RR, HR) are exponentiated, logit proportions (PLO) go through
    the inverse logit; raw proportions (PR) and differences stay as they are.
    Each bound is transformed separately, as metafor's ``predict(res, transf=)``.
    """
    if measure in RATIO_MEASURES:
        f, scale = math.exp, "ratio"
    elif measure == "PLO":
        f, scale = (lambda x: float(special.expit(x))), "proportion"
    elif measure == "PR":
        f, scale = float, "proportion"
    else:
        f, scale = float, "difference"
    return BackTransformed(
        estimate=f(res.estimate), ci_low=f(res.ci_low), ci_high=f(res.ci_high),
        pi_low=None if res.pi_low is None else f(res.pi_low), pi_high=None if res.pi_high is None else f(res.pi_high),
        scale=scale,
    )
