"""Forest plot drawn from a fitted ``meta.SubgroupAnalysis``.

``forest(analysis, path_stem, ...)`` writes ``<path_stem>.png`` (300 dpi) and
``<path_stem>.svg`` atomically and returns the matplotlib Figure. Rows are
grouped by disorder in the analysis' order; each group shows its studies
(label, events/n or n per arm, effect and 95% CI as text, weight), a diamond
for its pooled estimate with its heterogeneity, or a line saying there is no
comparative study. Then the overall diamond, its prediction interval, the
overall heterogeneity line and the test for subgroup differences.

Positive ``yi`` favours the intervention (``effects`` harmonises direction), so
the right-hand side of the axis reads "Favours <intervention>". Ratios are drawn on a
log axis with back-transformed tick labels.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; notebooks display the returned Figure themselves
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from .effects import RATIO_MEASURES  # noqa: E402
from .io import atomic_write_bytes  # noqa: E402
from .meta import PoolResult, SubgroupAnalysis  # noqa: E402
from .text import in_sentence  # noqa: E402

MEASURE_NAMES = {"OR": "Odds ratio", "RR": "Risk ratio", "RD": "Risk difference",
                 "MD": "Mean difference", "SMD": "Standardised mean difference (g)"}
SECONDARY_MARK = "\u2020"  # dagger: a number comes from a news or secondary summary
DERIVED_MARK = "\u2021"    # double dagger: events derived from a reported percentage
INK, GREY, ACCENT = "#1a1a1a", "#6b6b6b", "#1f4e79"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "p not estimable"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _effect_text(y: float, lo: float, hi: float, ratio: bool) -> str:
    if ratio:
        y, lo, hi = math.exp(y), math.exp(lo), math.exp(hi)
    return f"{y:.2f} [{lo:.2f}, {hi:.2f}]"


def heterogeneity_text(res: PoolResult) -> str:
    """'Heterogeneity: tau2 = ..., I2 = ..%, Q = .. (df = ..), p = ..' as a forest line."""
    if res.k < 2:
        return "single study: no pooling, no heterogeneity estimate"
    tau2 = f"\u03c4\u00b2 = {res.tau2:.3f}; " if res.tau2 is not None else ""
    return (f"Heterogeneity: {tau2}I\u00b2 = {res.i2:.0f}%; Q = {res.q:.2f} (df = {res.q_df}), "
            f"{_fmt_p(res.q_p)}")


def _arm_text(row: pd.Series, arm: str) -> str:
    events, n = row.get(f"events_{arm}"), row.get(f"n_{arm}")
    has_n = n is not None and pd.notna(n)
    if events is not None and pd.notna(events) and has_n:
        return f"{int(events)}/{int(n)}"
    return f"{int(n)}" if has_n else "n/r"


def _label(row: pd.Series) -> str:
    label = str(row.get("study", row.name))
    if bool(row.get("secondary_source", False)):
        label += SECONDARY_MARK
    if any(pd.notna(row.get(c)) for c in ("pct_t", "pct_c")):
        label += DERIVED_MARK
    return label


def _model_name(analysis: SubgroupAnalysis) -> str:
    name = {"FE": "common-effect model"}.get(analysis.method, f"random-effects model ({analysis.method})")
    return name + (", HKSJ" if analysis.hksj else "")


def forest(
    analysis: SubgroupAnalysis,
    path_stem: str | Path,
    *,
    title: str | None = None,
    note: str | None = None,
    group_labels: dict[str, str] | None = None,
    intervention: str = "Intervention",
) -> plt.Figure:
    """Draw the forest plot, save ``<path_stem>.png`` and ``.svg``, return the Figure.

    ``note`` is printed under the plot (e.g. "Sample corpus, not a complete
    search"). ``group_labels`` maps subgroup keys to headings (e.g. the
    protocol's ``Protocol.labels``; a key without one is its own heading).
    ``intervention`` names the intervention arm's column and the side it is favoured on.
    """
    labels = group_labels or {}
    ratio = analysis.measure in RATIO_MEASURES
    studies = analysis.studies

    # Layout: one list of rows from top to bottom, each a (kind, payload) pair.
    rows: list[tuple[str, Any]] = []
    for key, res in analysis.subgroups.items():
        rows.append(("heading", labels.get(key, key)))
        if res is None:
            rows.append(("empty", "No included comparative study with usable numbers"))
        else:
            for _, st in studies[studies["disorder"] == key].iterrows():
                rows.append(("study", st))
            if res.k > 1:
                rows.append(("diamond", (f"Subtotal (k = {res.k})", res, False)))
                rows.append(("het", heterogeneity_text(res)))
            else:
                rows.append(("het", "k = 1: the study's own estimate (no pooling)"))
        rows.append(("gap", None))
    overall = analysis.overall
    rows.append(("diamond", (f"Overall, {_model_name(analysis)} (k = {overall.k})", overall, True)))
    if overall.pi_low is not None:
        rows.append(("pi", overall))
    rows.append(("het", heterogeneity_text(overall)))
    if analysis.q_between is not None:
        rows.append(("het", f"Test for subgroup differences: Q = {analysis.q_between:.2f} "
                            f"(df = {analysis.df_between}), {_fmt_p(analysis.p_between)}"))

    n_rows = len(rows)
    row_h = 0.26
    fig_h = 1.0 + row_h * n_rows + 1.35
    fig = plt.figure(figsize=(12.5, fig_h))
    # Columns in figure-fraction x: text columns left and right of the plot panel.
    x_study, x_out, x_t, x_c = 0.015, 0.145, 0.395, 0.455
    plot_l, plot_r = 0.485, 0.745
    x_eff, x_w = 0.76, 0.985
    top = 1 - 0.95 / fig_h
    bottom = 1.35 / fig_h
    ax = fig.add_axes((plot_l, bottom, plot_r - plot_l, top - bottom))
    ax.set_ylim(n_rows - 0.5, -0.5)

    all_lo = [r.ci_low for r in [overall, *[s for s in analysis.subgroups.values() if s]]]
    all_hi = [r.ci_high for r in [overall, *[s for s in analysis.subgroups.values() if s]]]
    se_i = np.sqrt(studies["vi"].to_numpy(float))
    yi = studies["yi"].to_numpy(float)
    lo_data = min([*(yi - 1.959964 * se_i), *all_lo, overall.pi_low or 0.0, 0.0])
    hi_data = max([*(yi + 1.959964 * se_i), *all_hi, overall.pi_high or 0.0, 0.0])
    if ratio:  # keep 0.5 and 2 on the axis so a reader always sees both sides of 1
        lo_data, hi_data = min(lo_data, math.log(0.5)), max(hi_data, math.log(2))
    pad = 0.06 * (hi_data - lo_data or 1)
    lo_x, hi_x = lo_data - pad, hi_data + pad
    ax.set_xlim(lo_x, hi_x)

    def y_fig(i: float) -> float:  # row index -> figure fraction
        return top - (i + 0.5) / n_rows * (top - bottom)

    def text(x, i, s, **kw):
        kw.setdefault("va", "center")
        kw.setdefault("fontsize", 9)
        kw.setdefault("color", INK)
        fig.text(x, y_fig(i), s, **kw)

    header_y = top + 0.35 / fig_h
    for x, s, ha in ((x_study, "Study", "left"), (x_out, "Outcome", "left"), (x_t, intervention, "right"),
                     (x_c, "Control", "right"),
                     (x_eff, f"{analysis.measure} [95% CI]", "left"), (x_w, "Weight", "right")):
        fig.text(x, header_y, s, ha=ha, va="center", fontsize=9, fontweight="bold", color=INK)
    fig.add_artist(plt.Line2D([x_study, x_w], [top + 0.12 / fig_h] * 2, color=INK, lw=0.8))
    if title:
        fig.text(x_study, 1 - 0.3 / fig_h, title, fontsize=12, fontweight="bold", va="center", color=INK)

    max_w = studies["weight"].max() if len(studies) else 100.0
    for i, (kind, payload) in enumerate(rows):
        if kind == "heading":
            text(x_study, i, payload, fontweight="bold")
        elif kind == "empty":
            text(x_study + 0.012, i, payload, style="italic", color=GREY)
        elif kind == "study":
            st = payload
            lo, hi = st["yi"] - 1.959964 * math.sqrt(st["vi"]), st["yi"] + 1.959964 * math.sqrt(st["vi"])
            text(x_study + 0.012, i, _label(st))
            outcome = st.get("outcome_short")
            if isinstance(outcome, str):
                text(x_out, i, outcome, fontsize=8, color=GREY)
            text(x_t, i, _arm_text(st, "t"), ha="right")
            text(x_c, i, _arm_text(st, "c"), ha="right")
            text(x_eff, i, _effect_text(st["yi"], lo, hi, ratio), family="DejaVu Sans Mono", fontsize=8.5)
            text(x_w, i, f"{st['weight']:.1f}%", ha="right")
            ax.plot([max(lo, lo_x), min(hi, hi_x)], [i, i], color=INK, lw=1.0, solid_capstyle="butt")
            for edge, limit, sign in ((lo, lo_x, -1), (hi, hi_x, 1)):
                if (edge < limit) if sign < 0 else (edge > limit):  # CI runs off the axis: arrow
                    ax.annotate("", xy=(limit, i), xytext=(limit - sign * 0.04 * (hi_x - lo_x), i),
                                arrowprops=dict(arrowstyle="->", color=INK, lw=1.0))
            # Marker area proportional to weight (points^2, so squares stay square).
            ax.scatter([st["yi"]], [i], s=12 + 110 * st["weight"] / max_w, marker="s", color=ACCENT,
                       zorder=3, linewidths=0)
        elif kind == "diamond":
            label, res, is_overall = payload
            text(x_study + (0 if is_overall else 0.012), i, label, fontweight="bold" if is_overall else "normal")
            text(x_eff, i, _effect_text(res.estimate, res.ci_low, res.ci_high, ratio),
                 family="DejaVu Sans Mono", fontsize=8.5, fontweight="bold" if is_overall else "normal")
            if is_overall:
                text(x_w, i, "100%", ha="right", fontweight="bold")
            h = 0.34
            ax.add_patch(Polygon([(res.ci_low, i), (res.estimate, i - h), (res.ci_high, i), (res.estimate, i + h)],
                                 closed=True, facecolor=INK if is_overall else "white", edgecolor=INK, lw=1.0, zorder=3))
        elif kind == "pi":
            res = payload
            text(x_study, i, "95% prediction interval", color=GREY)
            text(x_eff, i, _effect_text(res.estimate, res.pi_low, res.pi_high, ratio).split(" ", 1)[1],
                 family="DejaVu Sans Mono", fontsize=8.5, color=GREY)
            ax.plot([max(res.pi_low, lo_x), min(res.pi_high, hi_x)], [i, i], color=GREY, lw=2.2,
                    solid_capstyle="butt")
        elif kind == "het":
            text(x_study + 0.012, i, payload, fontsize=8, color=GREY)

    null = 0.0
    ax.axvline(null, color=INK, lw=0.8, zorder=1)
    ax.axvline(overall.estimate, color=INK, lw=0.6, ls=(0, (3, 3)), zorder=1)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=8.5, colors=INK)
    if ratio:
        ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
                 if lo_x <= math.log(t) <= hi_x]
        ax.set_xticks([math.log(t) for t in ticks])
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel(f"{MEASURE_NAMES[analysis.measure]} (log scale)", fontsize=9, color=INK)
    else:
        ax.set_xlabel(MEASURE_NAMES.get(analysis.measure, analysis.measure), fontsize=9, color=INK)
    cap_y = bottom - 0.6 / fig_h
    null_fig = plot_l + (null - lo_x) / (hi_x - lo_x) * (plot_r - plot_l)
    fig.text(null_fig - 0.008, cap_y, "\u2190 Favours control", ha="right", va="center", fontsize=8.5, color=INK)
    fig.text(null_fig + 0.008, cap_y, f"Favours {in_sentence(intervention)} \u2192", ha="left", va="center",
             fontsize=8.5, color=INK)

    footer = [
        f"{SECONDARY_MARK} at least one number from a news or secondary summary, not the paper itself; "
        f"{DERIVED_MARK} events derived from a reported percentage and arm n. n/r: not reported.",
        "Weights are within each disorder. Direction harmonised: outcomes where lower is better were inverted.",
    ]
    if note:
        footer.insert(0, note)
    for j, line in enumerate(footer):
        fig.text(x_study, (0.5 - 0.17 * j) / fig_h, line, fontsize=7.5, color=GREY, va="center")

    path_stem = Path(path_stem)
    for ext, dpi in (("png", 300), ("svg", None)):
        buf = io.BytesIO()
        with plt.rc_context({"svg.fonttype": "none"}):  # SVG text stays text, editable by journals
            fig.savefig(buf, format=ext, facecolor="white", dpi=dpi or "figure")
        atomic_write_bytes(path_stem.with_suffix(f".{ext}"), buf.getvalue())
    return fig
