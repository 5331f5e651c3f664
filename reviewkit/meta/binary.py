"""Common-effect pooling of 2x2 tables: Mantel-Haenszel (``rma.mh``) and Peto (``rma.peto``).

Both follow metafor 3.8's defaults ``add = c(1/2, 0)``, ``to = c("only0",
"none")``, ``drop00 = c(TRUE, FALSE)``: the pooled estimate uses the tables as
they are (no continuity correction; tables with no events, or only events, in
both arms are kept and simply contribute nothing, or, for the MH risk ratio
and risk difference, their share), while Q, I^2 and H^2 compare per-study
escalc estimates (1/2 added to tables with a zero cell; tables with no events
or only events in both arms left out) with the pooled one.

Where the pooled estimate is undefined for valid tables (e.g. no event in any
treatment arm for the MH risk ratio) the result holds NaN and a note saying
why, as metafor returns NA; nothing raises and nothing is infinite.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..effects import two_by_two
from . import dist
from .model import Z975, PoolingError, PoolResult

logger = logging.getLogger(__name__)

MH_MEASURES = ("OR", "RR", "RD")


def _tables(events_t, n_t, events_c, n_c) -> tuple[np.ndarray, ...]:
    a, n1, c, n2 = (np.asarray(x, dtype=float) for x in (events_t, n_t, events_c, n_c))
    if not (a.shape == n1.shape == c.shape == n2.shape) or a.ndim != 1 or len(a) == 0:
        raise PoolingError("events_t, n_t, events_c, n_c must be non-empty, 1-D and the same length")
    if not all(np.all(np.isfinite(x)) for x in (a, n1, c, n2)):
        raise PoolingError("counts must be finite numbers")
    for ev, n, arm in ((a, n1, "treatment"), (c, n2, "control")):
        bad = np.flatnonzero((ev < 0) | (n < 1) | (ev > n))
        if len(bad):
            i = int(bad[0])
            raise PoolingError(f"table {i + 1}: {arm} arm has {ev[i]:g} events of {n[i]:g} "
                               "(need 0 <= events <= n and n >= 1)")
    return a, n1, c, n2


def _heterogeneity(a, n1, c, n2, measure: str, estimate: float) -> tuple:
    """(Q, df, p, I^2, H^2) from escalc estimates of the tables rma.mh keeps (None if undefined)."""
    keep = ~(((a == 0) & (c == 0)) | ((a == n1) & (c == n2)))
    if keep.sum() < 2 or not math.isfinite(estimate):
        return None, None, None, None, None
    yv = np.array([two_by_two(*t, measure)[:2] for t in zip(a[keep], n1[keep], c[keep], n2[keep])])
    q = max(0.0, float(np.sum((yv[:, 0] - estimate) ** 2 / yv[:, 1])))
    df = int(keep.sum()) - 1
    i2 = 100 * max(0.0, (q - df) / q) if q > 0 else 0.0
    return q, df, float(dist.chi2_sf(q, df)), i2, q / df


def _result(estimate: float, var: float, k: int, method: str, het: tuple, notes: tuple[str, ...]) -> PoolResult:
    se = math.sqrt(var) if var >= 0 else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        z = float(np.float64(estimate) / np.float64(se))
    q, df, q_p, i2, h2 = het
    for note in notes:
        logger.warning("%s", note)
    return PoolResult(
        estimate=estimate, se=se, ci_low=estimate - Z975 * se, ci_high=estimate + Z975 * se, z_or_t=z,
        p=float(2 * dist.norm_sf(abs(z))), tau2=None, i2=i2, h2=h2, q=q, q_df=df, q_p=q_p, pi_low=None,
        pi_high=None, k=k, method=method, hksj=False, notes=notes,
    )


def pool_mh(events_t, n_t, events_c, n_c, measure: str = "OR") -> PoolResult:
    """Mantel-Haenszel common-effect log OR, log RR or RD (metafor ``rma.mh``).

    Parameters
    ----------
    events_t, n_t, events_c, n_c : array-like
        Events and participants per arm, one table per study.
    measure : {"OR", "RR", "RD"}

    Returns
    -------
    PoolResult
        ``method="MH"``, ``k`` the number of tables. Variances: Robins-
        Breslow-Greenland (OR), Greenland-Robins (RR), Sato-Greenland-Robins
        (RD). The OR is undefined when sum(a d / N) or sum(b c / N) is 0, the
        RR when a whole arm has no event: estimate NaN, the reason in ``notes``.
    """
    if measure not in MH_MEASURES:
        raise PoolingError(f"Mantel-Haenszel pooling is for {', '.join(MH_MEASURES)}, not {measure!r}")
    a, n1, c, n2 = _tables(events_t, n_t, events_c, n_c)
    b, d = n1 - a, n2 - c
    n = n1 + n2
    notes: tuple[str, ...] = ()
    if measure == "OR":
        r_i, s_i = a / n * d, b / n * c
        r, s = float(r_i.sum()), float(s_i.sum())
        if r == 0 or s == 0:
            part = "sum(a d / N)" if r == 0 else "sum(b c / N)"
            notes = (f"Mantel-Haenszel odds ratio undefined: {part} = 0 (no table has events in one arm "
                     "together with non-events in the other in that direction); metafor gives NA",)
            estimate = var = math.nan
        else:
            p_i, q_i = (a + d) / n, (b + c) / n
            estimate = math.log(r / s)
            var = 0.5 * float(np.sum(p_i * r_i) / r**2 + np.sum(p_i * s_i + q_i * r_i) / (r * s)
                              + np.sum(q_i * s_i) / s**2)
    elif measure == "RR":
        if a.sum() == 0 or c.sum() == 0:
            arm = "treatment" if a.sum() == 0 else "control"
            notes = (f"Mantel-Haenszel risk ratio undefined: no event in any {arm} arm; metafor gives NA",)
            estimate = var = math.nan
        else:
            r, s = float(np.sum(a * (n2 / n))), float(np.sum(c * (n1 / n)))
            estimate = math.log(r / s)
            var = float(np.sum((n1 / n) * (n2 / n) * (a + c) - (a / n) * c)) / (r * s)
    else:
        den = float(np.sum(n1 * (n2 / n)))
        estimate = float(np.sum(a * (n2 / n) - c * (n1 / n))) / den
        var = (estimate * float(np.sum(c * (n1 / n) ** 2 - a * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2))
               + float(np.sum(a * (n2 - c) / n + c * (n1 - a) / n)) / 2) / den**2
        if np.all(((a == 0) & (c == 0)) | ((b == 0) & (d == 0))):
            notes = ("Mantel-Haenszel risk difference has no sampling variance: every table has no events "
                     "(or only events) in both arms; no test and a CI of zero width",)
    return _result(estimate, var, len(a), "MH", _heterogeneity(a, n1, c, n2, measure, estimate), notes)


def pool_peto(events_t, n_t, events_c, n_c) -> PoolResult:
    """Peto's common-effect log odds ratio (metafor ``rma.peto``).

    Parameters
    ----------
    events_t, n_t, events_c, n_c : array-like
        Events and participants per arm, one table per study.

    Returns
    -------
    PoolResult
        ``method="Peto"``: estimate sum(O - E) / sum(V), se 1 / sqrt(sum V) with
        E = (a + c) n1 / N and V = (a + c)(b + d) n1 n2 / (N^2 (N - 1));
        Q = sum (O - E)^2 / V - (sum (O - E))^2 / sum V over tables with V > 0.
        When no table has both outcomes (sum V = 0) the estimate is NaN and
        ``notes`` says why (metafor stops with an error).
    """
    a, n1, c, n2 = _tables(events_t, n_t, events_c, n_c)
    n = n1 + n2
    xt, yt = a + c, (n1 - a) + (n2 - c)
    e = xt * n1 / n
    v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
    sum_v = float(v.sum())
    if sum_v == 0:
        note = ("Peto odds ratio undefined: no table has both outcomes (every table has no events, or only "
                "events); metafor stops with an error",)
        return _result(math.nan, math.nan, len(a), "Peto", (None,) * 5, note)
    o_e = a - e
    estimate = float(o_e.sum()) / sum_v
    pos = v > 0
    het: tuple = (None,) * 5
    if pos.sum() >= 2:
        q = max(0.0, float(np.sum(o_e[pos] ** 2 / v[pos])) - float(o_e.sum()) ** 2 / sum_v)
        df = int(pos.sum()) - 1
        het = (q, df, float(dist.chi2_sf(q, df)), 100 * max(0.0, (q - df) / q) if q > 0 else 0.0, q / df)
    return _result(estimate, 1 / sum_v, len(a), "Peto", het, ())
