"""Diagnostic plots of a meta-analysis, each drawn on a matplotlib Axes the caller gives.

* ``funnel(ax, yi, vi, res)``: metafor's ``funnel()``: each study by its effect
  (x) and standard error (y, 0 at the top), a vertical line at the pooled
  estimate and the pseudo-confidence region estimate +/- z se (95% by
  default); with a ``trimfill`` result the imputed studies as open circles.
* ``leave1out_plot(ax, table, res)``: the influence of each study: the pooled
  estimate and CI without it (``meta.leave1out``), against the full model's
  estimate (line) and CI (band), with I^2 of each refit.

Both return the Axes and use the analysis scale; ratios get back-transformed
tick labels (0.5, 1, 2, ...) on their log axis, as the forest plot does. The
caller owns the Figure (notebooks show it, reports save it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .effects import NAMES, RATIO_MEASURES
from .meta.dist import norm_isf

if TYPE_CHECKING:  # matplotlib and pandas load only when a plot is drawn
    import pandas as pd
    from matplotlib.axes import Axes

    from .meta import PoolResult, TrimFill

INK, GREY, ACCENT, REGION = "#1a1a1a", "#6b6b6b", "#1f4e79", "#e8eef5"
# Round ratios for tick labels on a log axis, coarse to fine: the first set giving 3 or more ticks wins.
RATIO_TICKS = ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    """Round ratios whose logs lie in [lo, hi]."""
    decades = range(math.floor(lo / math.log(10)) - 1, math.ceil(hi / math.log(10)) + 1)
    for mantissas in RATIO_TICKS:
        ticks = [m * 10.0**e for e in decades for m in mantissas if lo <= math.log(m * 10.0**e) <= hi]
        if len(ticks) >= 3:
            return ticks
    return ticks


def _axis(ax: Axes, measure: str | None) -> None:
    """Label the effect axis; ratios get ticks at round ratios on their log scale."""
    if measure in RATIO_MEASURES:
        ticks = _ratio_ticks(*ax.get_xlim())
        ax.set_xticks([math.log(t) for t in ticks])
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel(f"{NAMES[measure].capitalize()} (log scale)", fontsize=9, color=INK)
    elif measure is not None:
        ax.set_xlabel(NAMES.get(measure, measure).capitalize(), fontsize=9, color=INK)


def funnel(ax: Axes, yi, vi, res: PoolResult, *, level: float = 0.95, filled: TrimFill | None = None,
           measure: str | None = None) -> Axes:
    """Draw a funnel plot with its pseudo-confidence region (metafor ``funnel(res)``).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    yi, vi : array-like
        The studies' effects (analysis scale) and sampling variances.
    res : PoolResult
        The model whose estimate centres the funnel (``meta.pool``). Ignored for
        the centre when ``filled`` is given: then the filled model's estimate.
    level : float
        Coverage of the pseudo-confidence region, estimate +/- z se for se from
        0 to the largest study se (metafor's default region, without tau^2).
    filled : TrimFill, optional
        A ``meta.trimfill`` result: its imputed studies are drawn as open circles.
    measure : str, optional
        The effect measure, for the axis label (and ratio tick labels).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.patches import Polygon

    y, se = np.asarray(yi, dtype=float), np.sqrt(np.asarray(vi, dtype=float))
    centre = res.estimate if filled is None else filled.estimate
    extra_y = np.array(filled.yi)[list(filled.filled)] if filled is not None else np.zeros(0)
    extra_se = np.sqrt(np.array(filled.vi)[list(filled.filled)]) if filled is not None else np.zeros(0)
    top = 1.05 * float(np.max(np.concatenate([se, extra_se])))
    z = norm_isf((1 - level) / 2)
    region = Polygon([(centre, 0.0), (centre - z * top, top), (centre + z * top, top)], closed=True,
                     facecolor=REGION, edgecolor=GREY, lw=0.8, ls=(0, (4, 3)), zorder=1,
                     label=f"{100 * level:g}% pseudo-confidence region")
    ax.add_patch(region)
    ax.axvline(centre, color=INK, lw=0.9, zorder=2, label="pooled estimate")
    ax.scatter(y, se, s=28, color=ACCENT, edgecolors=INK, linewidths=0.5, zorder=3, label="studies")
    if filled is not None and len(extra_y):
        ax.scatter(extra_y, extra_se, s=28, facecolors="white", edgecolors=INK, linewidths=0.9, zorder=3,
                   label=f"imputed by trim-and-fill (k0 = {filled.k0})")
    xs = np.concatenate([y, extra_y, [centre - z * top, centre + z * top]])
    pad = 0.05 * (xs.max() - xs.min() or 1.0)
    ax.set_xlim(xs.min() - pad, xs.max() + pad)
    ax.set_ylim(top, 0.0)  # standard error 0 (the most precise) at the top, as metafor
    ax.set_ylabel("Standard error", fontsize=9, color=INK)
    _axis(ax, measure)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8.5, colors=INK)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    return ax


def leave1out_plot(ax: Axes, table: pd.DataFrame, res: PoolResult, *, labels: Sequence[str] | None = None,
                   measure: str | None = None) -> Axes:
    """Draw each study's influence: the pooled estimate and CI with that study left out.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    table : pandas.DataFrame
        ``meta.leave1out(yi, vi, ...)``: one row per omitted study.
    res : PoolResult
        The model of all studies (same method), drawn as a line at its estimate
        and a band over its CI.
    labels : sequence of str, optional
        Row labels; default the table's index ("without <label>").
    measure : str, optional
        The effect measure, for the axis label (and ratio tick labels).

    Returns
    -------
    matplotlib.axes.Axes
    """
    names = [str(x) for x in (labels if labels is not None else table.index)]
    rows = np.arange(len(table))
    ax.axvspan(res.ci_low, res.ci_high, color=REGION, zorder=0, label="95% CI, all studies")
    ax.axvline(res.estimate, color=INK, lw=0.9, zorder=1, label="estimate, all studies")
    ax.hlines(rows, table["ci_low"], table["ci_high"], color=INK, lw=1.0, zorder=2)
    ax.scatter(table["estimate"], rows, s=26, marker="s", color=ACCENT, zorder=3, label="without the study")
    ax.set_yticks(rows)
    ax.set_yticklabels([f"without {n}" for n in names], fontsize=8.5)
    ax.set_ylim(len(table) - 0.5, -0.5)
    xs = np.concatenate([table["ci_low"], table["ci_high"], [res.ci_low, res.ci_high]])
    pad = 0.06 * (np.nanmax(xs) - np.nanmin(xs) or 1.0)
    ax.set_xlim(np.nanmin(xs) - pad, np.nanmax(xs) + pad)
    right = ax.get_yaxis_transform()  # x in axes fractions, y in rows
    for i, i2 in zip(rows, table["i2"]):
        text = "I\u00b2 n/a" if not np.isfinite(i2) else f"I\u00b2 {i2:.0f}%"
        ax.text(1.01, float(i), text, transform=right, va="center", fontsize=8, color=GREY)
    _axis(ax, measure)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", labelsize=8.5, colors=INK)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    return ax
