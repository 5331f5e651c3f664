"""Study effect sizes (``yi``, ``vi``) computed as metafor's ``escalc`` computes them.

``effect_sizes(df, measure)`` takes one row per study comparison and returns a
copy with these columns added:

``yi``           effect on the analysis scale (log OR, log RR, log HR, RD, MD, SMD)
``vi``           its sampling variance
``yi_measure``   the measure ``yi`` is on (the ``measure`` argument)
``effect_from``  how it was computed: ``2x2``, ``2x2 +0.5`` (zero-cell correction),
                 ``means``, ``reported CI``, or ``... -> SMD (Chinn)``
``flipped``      True where the sign of ``yi`` was reversed to harmonise direction

Input columns, per row (a row uses the first kind it has complete):

* 2x2 data: ``events_t, n_t, events_c, n_c`` (t = ketamine arm, c = control);
* means: ``mean_t, sd_t, n_t, mean_c, sd_c, n_c``;
* a reported estimate: ``estimate, ci_low, ci_high`` (95% CI) with the row's
  ``measure`` (OR, RR, HR are ratios; RD, MD, SMD differences).

Direction. escalc's ``yi`` is ketamine minus (or over) control. If the frame has
a ``favourable`` column, rows whose outcome is better when *lower*
(``favourable == "lower"``, e.g. relapse) get ``yi = -yi``. After that, positive
``yi`` (a ratio above 1) always favours ketamine. Without the column nothing is
flipped, so reference data sets reproduce escalc exactly.

Bad input (events > n, a negative SD, an arm with n < 2, a CI that does not
contain its estimate, an unknown measure) raises ``EffectSizeError`` naming the
study and the column.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .errors import ReviewkitError

MEASURES = ("OR", "RR", "RD", "MD", "SMD")
# Measures a row may *report* with a CI; HR cannot be computed from arm data.
REPORTED_MEASURES = MEASURES + ("HR",)
RATIO_MEASURES = ("OR", "RR", "HR")
BINARY_MEASURES = ("OR", "RR", "RD")

# The 95% CI of a reported estimate spans 2 * z_{0.975} standard errors.
Z975 = float(stats.norm.ppf(0.975))

TWO_BY_TWO = ("events_t", "n_t", "events_c", "n_c")
MEANS = ("mean_t", "sd_t", "n_t", "mean_c", "sd_c", "n_c")
REPORTED = ("estimate", "ci_low", "ci_high")


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


def data_kind(row: pd.Series) -> str | None:
    """Which complete set of numbers the row has: '2x2', 'means', 'reported' or None."""
    for kind, cols in (("2x2", TWO_BY_TWO), ("means", MEANS), ("reported", REPORTED)):
        if all(c in row.index and pd.notna(row[c]) for c in cols):
            return kind
    return None


def check_row(row: pd.Series) -> None:
    """Raise EffectSizeError for impossible numbers in any column the row fills."""
    where = row_label(row)

    def bad(col: str, why: str) -> EffectSizeError:
        return EffectSizeError(f"{where}: column {col!r} = {row[col]!r}: {why}")

    for col in ("n_t", "n_c"):
        if col in row.index and pd.notna(row[col]) and row[col] < 2:
            raise bad(col, "an arm needs at least 2 participants")
    for arm in ("t", "c"):
        ev, n = f"events_{arm}", f"n_{arm}"
        if ev in row.index and pd.notna(row[ev]):
            if row[ev] < 0 or row[ev] != int(row[ev]):
                raise bad(ev, "events must be a whole number >= 0")
            if n in row.index and pd.notna(row[n]) and row[ev] > row[n]:
                raise bad(ev, f"more events than participants ({n} = {row[n]})")
        sd = f"sd_{arm}"
        if sd in row.index and pd.notna(row[sd]) and row[sd] < 0:
            raise bad(sd, "a standard deviation cannot be negative")
    if data_kind(row) == "reported":
        measure = row.get("measure")
        if measure not in REPORTED_MEASURES:
            raise EffectSizeError(
                f"{where}: column 'measure' = {measure!r}: unknown measure; "
                f"use one of {', '.join(REPORTED_MEASURES)}"
            )
        est, lo, hi = (float(row[c]) for c in REPORTED)
        if measure in RATIO_MEASURES and min(est, lo, hi) <= 0:
            col = next(c for c in REPORTED if row[c] <= 0)
            raise bad(col, f"a {measure} and its CI must be > 0")
        if not lo < hi:
            raise bad("ci_low", f"CI lower limit must be below the upper limit ({hi})")
        if not lo <= est <= hi:
            col = "ci_low" if est < lo else "ci_high"
            raise bad(col, f"the 95% CI [{lo}, {hi}] does not contain the estimate {est}")


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


def chinn_smd(log_or: float, v_log_or: float) -> tuple[float, float]:
    """Chinn (2000): SMD = ln(OR) * sqrt(3) / pi, variance scaled by 3 / pi^2."""
    return log_or * math.sqrt(3) / math.pi, v_log_or * 3 / math.pi**2


def from_ci(estimate: float, ci_low: float, ci_high: float, ratio: bool) -> tuple[float, float]:
    """yi and vi from a reported estimate and its 95% CI (log scale for ratios)."""
    if ratio:
        estimate, ci_low, ci_high = math.log(estimate), math.log(ci_low), math.log(ci_high)
    return estimate, ((ci_high - ci_low) / (2 * Z975)) ** 2


def _row_effect(row: pd.Series, measure: str, add: float) -> tuple[float, float, str]:
    where = row_label(row)
    kind = data_kind(row)
    if kind == "2x2":
        if measure == "MD":
            raise EffectSizeError(f"{where}: 2x2 counts cannot give a mean difference")
        target = "OR" if measure == "SMD" else measure
        yi, vi, corrected = two_by_two(
            float(row["events_t"]), float(row["n_t"]), float(row["events_c"]), float(row["n_c"]), target, add
        )
        how = "2x2 +0.5" if corrected else "2x2"
        if measure == "SMD":
            return (*chinn_smd(yi, vi), f"{how} OR -> SMD (Chinn)")
        return yi, vi, how
    if kind == "means":
        if measure not in ("MD", "SMD"):
            raise EffectSizeError(f"{where}: means and SDs cannot give a {measure}")
        m1, sd1, n1, m2, sd2, n2 = (float(row[c]) for c in MEANS)
        if measure == "MD":
            return m1 - m2, sd1**2 / n1 + sd2**2 / n2, "means"
        if sd1 == 0 and sd2 == 0:
            raise EffectSizeError(f"{where}: columns 'sd_t' and 'sd_c' are both 0; no SMD")
        return (*hedges_g(m1, sd1, n1, m2, sd2, n2), "means")
    if kind == "reported":
        reported = row["measure"]
        yi, vi = from_ci(float(row["estimate"]), float(row["ci_low"]), float(row["ci_high"]),
                         reported in RATIO_MEASURES)
        if reported == measure:
            return yi, vi, "reported CI"
        if reported == "OR" and measure == "SMD":
            return (*chinn_smd(yi, vi), "reported CI OR -> SMD (Chinn)")
        raise EffectSizeError(f"{where}: column 'measure' = {reported!r}: cannot be expressed as {measure}")
    raise EffectSizeError(
        f"{where}: no complete effect data (needs {', '.join(TWO_BY_TWO)}; or {', '.join(MEANS)}; "
        f"or {', '.join(REPORTED)} with measure)"
    )


def effect_sizes(df: pd.DataFrame, measure: str, *, add: float = 0.5) -> pd.DataFrame:
    """Return a copy of ``df`` with ``yi, vi, yi_measure, effect_from, flipped`` added.

    ``measure`` is one of OR, RR, RD, MD, SMD. A row that reports an HR is valid
    extraction data but has no yi on these scales, so it raises here: select the
    rows to analyse first.
    """
    check_measure(measure)
    out = df.copy()
    yis, vis, hows, flips = [], [], [], []
    for _, row in df.iterrows():
        check_row(row)
        yi, vi, how = _row_effect(row, measure, add)
        flip = row.get("favourable") == "lower"
        yis.append(-yi if flip else yi)
        vis.append(vi)
        hows.append(how)
        flips.append(bool(flip))
    out["yi"] = np.array(yis, dtype=float)
    out["vi"] = np.array(vis, dtype=float)
    out["yi_measure"] = measure
    out["effect_from"] = hows
    out["flipped"] = flips
    return out
