"""Study effect sizes (``yi``, ``vi``) computed as metafor's ``escalc`` computes them,
and the Cochrane Handbook's derivations of SEs and SDs from what papers report.

``effect_sizes(df, measure)`` takes one row per study comparison (or per single
arm, for proportions) and returns a copy with these columns added:

``yi``           effect on the analysis scale (log OR, log RR, log HR, RD, MD, SMD,
                 logit proportion for PLO, proportion for PR)
``vi``           its sampling variance
``yi_measure``   the measure ``yi`` is on (the ``measure`` argument)
``effect_from``  how it was computed: ``2x2``, ``2x2 +0.5`` (zero-cell correction),
                 ``means``, ``events/n`` (``events/n +0.5``), ``reported CI``,
                 ``reported SE``, ``reported p``, or ``... -> SMD (Chinn)``
``derived``      True where the variance was derived (from a CI or a p-value)
                 or converted (Chinn), not computed from counts or means and SDs
``flipped``      True where the sign of ``yi`` was reversed to harmonise direction

Input columns, per row (a row uses the first kind it has complete):

* 2x2 data: ``events_t, n_t, events_c, n_c`` (t = the intervention arm, c = the comparator);
* means: ``mean_t, sd_t, n_t, mean_c, sd_c, n_c``;
* one arm (PLO, PR): ``events, n``;
* a reported estimate with the row's ``measure`` (OR, RR, HR are ratios; RD,
  MD, SMD differences) and ``estimate`` plus one of: ``ci_low, ci_high`` (95%
  unless ``ci_level`` says otherwise), ``se`` (on the analysis scale, i.e. of
  the log ratio), or ``p_value`` (two-sided).

Direction. escalc's ``yi`` is intervention minus (or over) comparator. If the frame has
a ``favourable`` column, rows whose outcome is better when *lower*
(``favourable == "lower"``, e.g. relapse) get ``yi = -yi``. After that, positive
``yi`` (a ratio above 1) always favours the intervention. Without the column nothing is
flipped, so reference data sets reproduce escalc exactly.

Derivations (each returns a ``Derived`` value with a ``how`` string):
``se_from_ci``, ``se_from_p``, ``sd_from_se``, ``sd_from_ci``, ``sd_from_p``
(Cochrane Handbook v6 sections 6.3.1, 6.5.2.2 and 6.5.2.3; t-based for small
samples), ``smd_from_log_or`` and ``log_or_from_smd`` (Chinn 2000).

Bad input (events > n, a negative SD, an arm with n < 2, a CI that does not
contain its estimate, a p-value outside (0, 1), an unknown measure) raises
``EffectSizeError`` naming the study and the column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .errors import ReviewkitError

MEASURES = ("OR", "RR", "RD", "MD", "SMD", "HR", "ROM", "PLO", "PR")
# Measures a row may *report* with a CI, SE or p-value; HR cannot be computed from arm data.
REPORTED_MEASURES = ("OR", "RR", "RD", "MD", "SMD", "HR", "ROM")
RATIO_MEASURES = ("OR", "RR", "HR", "ROM")
BINARY_MEASURES = ("OR", "RR", "RD")
PROPORTION_MEASURES = ("PLO", "PR")
NAMES = {"OR": "odds ratio", "RR": "risk ratio", "RD": "risk difference", "MD": "mean difference",
         "SMD": "standardised mean difference", "HR": "hazard ratio", "ROM": "ratio of means",
         "PLO": "logit proportion", "PR": "proportion"}

TWO_BY_TWO = ("events_t", "n_t", "events_c", "n_c")
MEANS = ("mean_t", "sd_t", "n_t", "mean_c", "sd_c", "n_c")
ONE_ARM = ("events", "n")
# What a reported estimate's uncertainty may come as, in order of preference.
UNCERTAINTY = (("ci_low", "ci_high"), ("se",), ("p_value",))


class EffectSizeError(ReviewkitError):
    """A row cannot give an effect size (impossible numbers, unknown measure)."""


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise EffectSizeError(f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}")
    return measure


def row_label(row: pd.Series) -> str:
    """How an error names a row: the study (and row id) where the frame has them."""
    study = row.get("study")
    name = str(study) if isinstance(study, str) and study else f"row {row.name}"
    row_id = row.get("row_id")
    return f"{name} ({row_id})" if isinstance(row_id, str) and row_id else name


def _has(row: pd.Series, cols) -> bool:
    return all(c in row.index and pd.notna(row[c]) for c in cols)


def data_kind(row: pd.Series) -> str | None:
    """Which complete set of numbers the row has: '2x2', 'means', 'one-arm', 'reported' or None."""
    for kind, cols in (("2x2", TWO_BY_TWO), ("means", MEANS), ("one-arm", ONE_ARM)):
        if _has(row, cols):
            return kind
    if _has(row, ("estimate",)) and any(_has(row, cols) for cols in UNCERTAINTY):
        return "reported"
    return None


def check_row(row: pd.Series) -> None:
    """Raise EffectSizeError for impossible numbers in any column the row fills."""
    where = row_label(row)

    def bad(col: str, why: str) -> EffectSizeError:
        return EffectSizeError(f"{where}: column {col!r} = {row[col]!r}: {why}")

    def filled(col: str) -> bool:
        return col in row.index and pd.notna(row[col])

    for col in ("n_t", "n_c"):
        if filled(col) and row[col] < 2:
            raise bad(col, "an arm needs at least 2 participants")
    if filled("n") and row["n"] < 1:
        raise bad("n", "an arm needs at least 1 participant")
    for ev, n in (("events_t", "n_t"), ("events_c", "n_c"), ("events", "n")):
        if filled(ev):
            if row[ev] < 0 or row[ev] != int(row[ev]):
                raise bad(ev, "events must be a whole number >= 0")
            if filled(n) and row[ev] > row[n]:
                raise bad(ev, f"more events than participants ({n} = {row[n]})")
    for sd in ("sd_t", "sd_c", "sd_pre", "sd_post"):
        if filled(sd) and row[sd] < 0:
            raise bad(sd, "a standard deviation cannot be negative")
    if data_kind(row) == "reported":
        _check_reported(row, where, bad, filled)


def _check_reported(row: pd.Series, where: str, bad, filled) -> None:
    measure = row.get("measure")
    if measure not in REPORTED_MEASURES:
        raise EffectSizeError(
            f"{where}: column 'measure' = {measure!r}: unknown measure; use one of {', '.join(REPORTED_MEASURES)}"
        )
    ratio = measure in RATIO_MEASURES
    est = float(row["estimate"])
    if ratio and est <= 0:
        raise bad("estimate", f"a {measure} must be > 0")
    if _has(row, ("ci_low", "ci_high")):
        lo, hi = float(row["ci_low"]), float(row["ci_high"])
        if ratio and min(lo, hi) <= 0:
            raise bad("ci_low" if lo <= 0 else "ci_high", f"a {measure} and its CI must be > 0")
        if not lo < hi:
            raise bad("ci_low", f"CI lower limit must be below the upper limit ({hi})")
        if not lo <= est <= hi:
            raise bad("ci_low" if est < lo else "ci_high", f"the CI [{lo}, {hi}] does not contain the estimate {est}")
        if filled("ci_level") and not 0 < float(row["ci_level"]) < 1:
            raise bad("ci_level", "a confidence level is between 0 and 1 (e.g. 0.95)")
    elif filled("se"):
        if not float(row["se"]) > 0:
            raise bad("se", "a standard error must be > 0")
    else:
        p = float(row["p_value"])
        if not 0 < p < 1:
            raise bad("p_value", "a two-sided p-value below 1 is needed to derive a standard error")
        if (math.log(est) if ratio else est) == 0:
            raise bad("p_value", "an estimate of no effect gives no standard error from a p-value")


def two_by_two(a: float, n1: float, c: float, n2: float, measure: str, add: float = 0.5) -> tuple[float, float, bool]:
    """escalc OR/RR/RD for one table; returns (yi, vi, corrected).

    metafor's default ``add=1/2, to="only0"``: a table with any zero cell gets
    ``add`` in all four cells (and n recomputed from them); other tables are
    untouched.
    """
    b, d = n1 - a, n2 - c
    corrected = min(a, b, c, d) == 0
    if corrected:
        a, b, c, d = a + add, b + add, c + add, d + add
        n1, n2 = a + b, c + d
    if measure == "OR":
        return math.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d, corrected
    if measure == "RR":
        return math.log(a / n1) - math.log(c / n2), 1 / a - 1 / n1 + 1 / c - 1 / n2, corrected
    p1, p2 = a / n1, c / n2
    # vtype "LS": the large-sample variance with n (not n - 1) in the denominator.
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2, corrected


def one_arm(x: float, n: float, measure: str, add: float = 0.5) -> tuple[float, float, bool]:
    """escalc PLO (logit proportion) or PR (proportion) for one arm; returns (yi, vi, corrected).

    With ``to="only0"`` an arm with no events, or only events, gets ``add`` in
    events and non-events (so n + 2 add), for PR as well as PLO (escalc).
    """
    m = n - x
    corrected = x == 0 or m == 0
    if corrected:
        x, m = x + add, m + add
    n = x + m
    p = x / n
    if measure == "PLO":
        return math.log(p / (1 - p)), 1 / x + 1 / m, corrected
    return p, p * (1 - p) / n, corrected


def hedges_g(m1: float, sd1: float, n1: float, m2: float, sd2: float, n2: float) -> tuple[float, float]:
    """escalc SMD: Hedges' g with the exact gamma correction, default vtype "LS".

    ``c(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))`` with m = n1 + n2 - 2, in
    log-gamma form as metafor computes it (no overflow for large m);
    ``vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2))`` (Hedges 1982, eq. 8, with the
    corrected g, as metafor does).
    """
    m = n1 + n2 - 2
    cm = math.exp(math.lgamma(m / 2) - math.log(math.sqrt(m / 2)) - math.lgamma((m - 1) / 2))
    sdp = math.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / m)
    g = cm * (m1 - m2) / sdp
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


@dataclass(frozen=True)
class Derived:
    """A number derived from other reported numbers, marked as such.

    ``value`` is the derived number (an SE, an SD, an SMD or a log OR);
    ``variance`` its sampling variance where the derivation gives one (Chinn);
    ``how`` says from what and by which formula, short enough for a table cell.
    """

    value: float
    how: str
    variance: float | None = None
    derived: bool = True


def _crit(level: float, df: float | None) -> tuple[float, str]:
    if not 0 < level < 1:
        raise EffectSizeError(f"a confidence level is between 0 and 1 (got {level})")
    alpha = 1 - level
    if df is None:
        return float(stats.norm.isf(alpha / 2)), "normal"
    if not df > 0:
        raise EffectSizeError(f"degrees of freedom must be > 0 (got {df})")
    return float(stats.t.isf(alpha / 2, df)), f"t({df:g})"


def se_from_ci(ci_low: float, ci_high: float, *, level: float = 0.95, ratio: bool = False,
               df: float | None = None) -> Derived:
    """SE of an estimate from its confidence interval (Cochrane Handbook 6.3.1, 6.5.2.3).

    Parameters
    ----------
    ci_low, ci_high : float
        The interval; for a ratio (``ratio=True``) on the ratio scale, and the
        SE is of the log ratio.
    level : float
        Confidence level of the interval.
    df : float, optional
        Degrees of freedom when the interval came from a t distribution (small
        samples: n1 + n2 - 2 for a difference in means, n - 1 for one mean);
        default the normal quantile (the Handbook's 3.92 = 2 x 1.96 for 95%).

    Returns
    -------
    Derived
        SE = (upper - lower) / (2 q), q the (1 + level)/2 quantile.
    """
    if not ci_low < ci_high:
        raise EffectSizeError(f"CI lower limit {ci_low} must be below the upper limit {ci_high}")
    if ratio and ci_low <= 0:
        raise EffectSizeError(f"a ratio's CI must be > 0 (got {ci_low})")
    lo, hi = (math.log(ci_low), math.log(ci_high)) if ratio else (ci_low, ci_high)
    q, dist = _crit(level, df)
    scale = " of the log ratio" if ratio else ""
    return Derived((hi - lo) / (2 * q), f"SE{scale} from the {100 * level:g}% CI: width / (2 x {q:.4f}), {dist}")


def se_from_p(estimate: float, p: float, *, ratio: bool = False, df: float | None = None) -> Derived:
    """SE of an estimate from its two-sided p-value (Cochrane Handbook 6.3.2, 6.5.2.3).

    Parameters
    ----------
    estimate : float
        The estimate (a ratio when ``ratio=True``; the SE is of its log).
    p : float
        Two-sided p-value, 0 < p < 1 (an exact value, not "p < 0.05").
    df : float, optional
        Degrees of freedom of a t test (n1 + n2 - 2 for two means); default normal.

    Returns
    -------
    Derived
        SE = |estimate| / q, q the 1 - p/2 quantile.
    """
    if not 0 < p < 1:
        raise EffectSizeError(f"a two-sided p-value must be between 0 and 1 (got {p})")
    if ratio and estimate <= 0:
        raise EffectSizeError(f"a ratio must be > 0 (got {estimate})")
    y = math.log(estimate) if ratio else estimate
    if y == 0:
        raise EffectSizeError("an estimate of no effect gives no standard error from a p-value")
    q, dist = _crit(1 - p, df)
    scale = " of the log ratio" if ratio else ""
    return Derived(abs(y) / q, f"SE{scale} from p = {p:g}: |estimate| / {q:.4f}, {dist}")


def sd_from_se(se: float, n1: float, n2: float | None = None) -> Derived:
    """SD from the SE of a mean (SD = SE sqrt(n)) or of a difference in means (SD = SE / sqrt(1/n1 + 1/n2)).

    The second assumes the two groups share one SD (Cochrane Handbook 6.5.2.3).
    """
    if not se > 0 or not n1 >= 1 or (n2 is not None and not n2 >= 1):
        raise EffectSizeError(f"need se > 0 and group sizes >= 1 (got se={se}, n1={n1}, n2={n2})")
    if n2 is None:
        return Derived(se * math.sqrt(n1), f"SD from the SE of a mean: SE x sqrt({n1:g})")
    return Derived(se / math.sqrt(1 / n1 + 1 / n2), f"SD from the SE of a difference: SE / sqrt(1/{n1:g} + 1/{n2:g})")


def _mean_df(n1: float, n2: float | None, dist: str) -> float | None:
    if dist not in ("auto", "t", "z"):
        raise EffectSizeError(f"dist must be 'auto', 't' or 'z' (got {dist!r})")
    small = n1 < 60 or (n2 is not None and n2 < 60)
    if dist == "z" or (dist == "auto" and not small):
        return None
    return n1 - 1 if n2 is None else n1 + n2 - 2


def sd_from_ci(ci_low: float, ci_high: float, n1: float, n2: float | None = None, *, level: float = 0.95,
               dist: str = "auto") -> Derived:
    """SD from the CI of a mean (n2 None, Handbook 6.5.2.2) or of a difference in means (6.5.2.3).

    ``dist="auto"`` uses the t quantile (n - 1, or n1 + n2 - 2 df) when a group
    has fewer than 60 participants, as the Handbook advises, else the normal
    quantile; ``"t"`` or ``"z"`` force one.
    """
    se = se_from_ci(ci_low, ci_high, level=level, df=_mean_df(n1, n2, dist))
    sd = sd_from_se(se.value, n1, n2)
    return Derived(sd.value, f"{sd.how}; {se.how}")


def sd_from_p(difference: float, p: float, n1: float, n2: float, *, dist: str = "t") -> Derived:
    """SD shared by two groups from the p-value of their difference in means (Handbook 6.5.2.3).

    The t value is recovered with n1 + n2 - 2 df (``dist="t"``, as a t test
    reports it); ``dist="z"`` uses the normal quantile.
    """
    se = se_from_p(difference, p, df=None if dist == "z" else _mean_df(n1, n2, "t"))
    sd = sd_from_se(se.value, n1, n2)
    return Derived(sd.value, f"{sd.how}; {se.how}")


def smd_from_log_or(log_or: float, variance: float) -> Derived:
    """Chinn (2000): SMD = ln(OR) sqrt(3) / pi, variance scaled by 3 / pi^2."""
    return Derived(log_or * math.sqrt(3) / math.pi, "SMD from log OR (Chinn 2000): x sqrt(3)/pi",
                   variance * 3 / math.pi**2)


def log_or_from_smd(smd: float, variance: float) -> Derived:
    """Chinn (2000) the other way: ln(OR) = SMD pi / sqrt(3), variance scaled by pi^2 / 3."""
    return Derived(smd * math.pi / math.sqrt(3), "log OR from SMD (Chinn 2000): x pi/sqrt(3)",
                   variance * math.pi**2 / 3)


def _reported(row: pd.Series, ratio: bool) -> tuple[float, float, str]:
    """yi, vi and how, from a reported estimate with a CI, an SE or a p-value."""
    est = float(row["estimate"])
    yi = math.log(est) if ratio else est
    if _has(row, ("ci_low", "ci_high")):
        level = float(row["ci_level"]) if _has(row, ("ci_level",)) else 0.95
        df = float(row["ci_df"]) if _has(row, ("ci_df",)) else None  # a CI from t, e.g. of a small trial's MD
        derived = se_from_ci(float(row["ci_low"]), float(row["ci_high"]), level=level, ratio=ratio, df=df)
        return yi, derived.value**2, "reported CI" + (f" ({derived.how})" if df else "")
    if _has(row, ("se",)):
        return yi, float(row["se"]) ** 2, "reported SE"
    return yi, se_from_p(est, float(row["p_value"]), ratio=ratio).value ** 2, "reported p"


def _row_effect(row: pd.Series, measure: str, add: float, drop00: bool) -> tuple[float, float, str, bool]:
    """(yi, vi, effect_from, derived) for one row."""
    where = row_label(row)
    kind = data_kind(row)
    if kind == "2x2":
        if measure not in BINARY_MEASURES + ("SMD",):
            raise EffectSizeError(f"{where}: 2x2 counts cannot give a {NAMES[measure]}")
        a, n1, c, n2 = (float(row[col]) for col in TWO_BY_TWO)
        if drop00 and ((a == 0 and c == 0) or (a == n1 and c == n2)):
            return math.nan, math.nan, "2x2 no events (or only events) in both arms: dropped", False
        target = "OR" if measure == "SMD" else measure
        yi, vi, corrected = two_by_two(a, n1, c, n2, target, add)
        how = "2x2 +0.5" if corrected else "2x2"
        if measure == "SMD":
            smd = smd_from_log_or(yi, vi)
            return smd.value, float(smd.variance or 0.0), f"{how} OR -> SMD (Chinn)", True
        return yi, vi, how, False
    if kind == "means":
        if measure not in ("MD", "SMD", "ROM"):
            raise EffectSizeError(f"{where}: means and SDs cannot give a {NAMES[measure]}")
        m1, sd1, n1, m2, sd2, n2 = (float(row[c]) for c in MEANS)
        if measure == "MD":
            return m1 - m2, sd1**2 / n1 + sd2**2 / n2, "means", False
        if measure == "ROM":  # escalc "ROM": log ratio of means, delta-method variance
            if m1 <= 0 or m2 <= 0:
                raise EffectSizeError(f"{where}: a ratio of means needs positive means (got {m1}, {m2})")
            return math.log(m1 / m2), sd1**2 / (n1 * m1**2) + sd2**2 / (n2 * m2**2), "means", False
        if sd1 == 0 and sd2 == 0:
            raise EffectSizeError(f"{where}: columns 'sd_t' and 'sd_c' are both 0; no SMD")
        return (*hedges_g(m1, sd1, n1, m2, sd2, n2), "means", False)
    if kind == "one-arm":
        if measure not in PROPORTION_MEASURES:
            raise EffectSizeError(f"{where}: one arm's events/n give a proportion (PLO or PR), not a {NAMES[measure]}")
        yi, vi, corrected = one_arm(float(row["events"]), float(row["n"]), measure, add)
        return yi, vi, "events/n +0.5" if corrected else "events/n", False
    if kind == "reported":
        reported = row["measure"]
        if reported == measure or (reported == "OR" and measure == "SMD"):
            yi, vi, how = _reported(row, reported in RATIO_MEASURES)
            if reported == measure:
                return yi, vi, how, how != "reported SE"
            smd = smd_from_log_or(yi, vi)
            return smd.value, float(smd.variance or 0.0), f"{how} OR -> SMD (Chinn)", True
        raise EffectSizeError(f"{where}: column 'measure' = {reported!r}: cannot be expressed as {measure}")
    raise EffectSizeError(
        f"{where}: no complete effect data (needs {', '.join(TWO_BY_TWO)}; or {', '.join(MEANS)}; "
        f"or {', '.join(ONE_ARM)}; or estimate with ci_low and ci_high, se or p_value, and measure)"
    )


def effect_sizes(df: pd.DataFrame, measure: str, *, add: float = 0.5, drop00: bool = False) -> pd.DataFrame:
    """Return a copy of ``df`` with ``yi, vi, yi_measure, effect_from, derived, flipped`` added.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per study comparison (see the module docstring for columns).
    measure : {"OR", "RR", "RD", "MD", "SMD", "HR", "ROM", "PLO", "PR"}
        The analysis scale. HR comes only from reported estimates (generic
        inverse variance); ROM (log ratio of means, escalc's "ROM") from means
        and SDs or a reported ratio; PLO and PR from single-arm ``events, n``.
    add : float
        Continuity correction for tables and arms with a zero cell (escalc
        ``add=1/2, to="only0"``).
    drop00 : bool
        escalc's ``drop00``: tables with no events, or only events, in both arms
        get yi = vi = NaN (leave them out before pooling). Default False, as
        escalc: such tables are kept with 1/2 added to each cell.

    Returns
    -------
    pandas.DataFrame
    """
    check_measure(measure)
    out = df.copy()
    yis, vis, hows, derived, flips = [], [], [], [], []
    for _, row in df.iterrows():
        check_row(row)
        yi, vi, how, was_derived = _row_effect(row, measure, add, drop00)
        flip = row.get("favourable") == "lower"
        yis.append(-yi if flip else yi)
        vis.append(vi)
        hows.append(how)
        derived.append(was_derived)
        flips.append(bool(flip))
    out["yi"] = np.array(yis, dtype=float)
    out["vi"] = np.array(vis, dtype=float)
    out["yi_measure"] = measure
    out["effect_from"] = hows
    out["derived"] = derived
    out["flipped"] = flips
    return out
