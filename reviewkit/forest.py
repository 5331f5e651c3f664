"""Forest plots: one per synthesis, and an overview of every synthesis.

``forest(ax, synthesis)`` draws one ``reviewkit.synthesis.Synthesis`` on a given
Axes: per study its label, outcome and time point, the arms' numbers
(events/total, or n), the effect with its 95% CI as text and as a line with a
square sized by weight, its weight; then the pooled diamond with its weight
(100%), the 95% prediction interval and the heterogeneity line (k >= 2), or a
line saying the single study's estimate is the result; then the studies
without usable numbers and what they reported. The effect panel is an inset of
``ax``; text columns sit on ``ax`` itself. ``forest_figure`` sizes a figure for
it and writes PNG (200 dpi) and SVG atomically.

``overview(ax, syntheses)`` draws every synthesis of one measure as a row (its
estimate, CI, k, participants and certainty); ``overview_figure`` stacks one
panel per measure.

Effects are shown in the outcome's own direction (an HR of relapse below 1
favours the intervention, and the "Favours" captions follow). Every text is at
least 8.5 pt on a 10-inch-wide figure shown at its natural size, and no text
overlaps another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; notebooks display the written PNG
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from .figures import save_figure  # noqa: E402
from .meta import PoolResult  # noqa: E402
from .synthesis import Synthesis  # noqa: E402
from .text import in_sentence  # noqa: E402

MEASURE_NAMES = {"OR": "Odds ratio", "RR": "Risk ratio", "RD": "Risk difference", "HR": "Hazard ratio",
                 "MD": "Mean difference", "SMD": "Standardised mean difference (g)", "ROM": "Ratio of means",
                 "PLO": "Proportion (logit scale)", "PR": "Proportion"}
SECONDARY_MARK = "\u2020"  # dagger: a number comes from a news or secondary summary
DERIVED_MARK = "\u2021"    # double dagger: a number derived from reported ones (e.g. events from a percentage)
INK, GREY, ACCENT = "#1a1a1a", "#555555", "#1f4e79"
FONT = 9                   # points on a 10-inch-wide figure: >= 8 pt when shown at 960 px
WIDTH = 10.0
Z = 1.959963984540054


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "p not estimable"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def heterogeneity_text(res: PoolResult) -> str:
    """'Heterogeneity: tau2 = ..; I2 = ..%; Q = .. (df = ..), p = ..' as a forest line."""
    if res.k < 2:
        return "single study: no pooling, no heterogeneity estimate"
    tau2 = f"\u03c4\u00b2 = {res.tau2:.3f}; " if res.tau2 is not None else ""
    return (f"Heterogeneity: {tau2}I\u00b2 = {res.i2:.0f}%; Q = {res.q:.2f} (df = {res.q_df}), "
            f"{_fmt_p(res.q_p)}")


def _shown(s: Synthesis, y: float) -> float:
    """An analysis-scale value on the plot's x axis (log scale for ratios, outcome's own direction)."""
    return -y if s.lower_is_better else y


def _number(s: Synthesis, x: float) -> str:
    """A value of the plot's x axis as a reader reads it (ratios exponentiated, logits as proportions)."""
    if s.measure == "PLO":
        return f"{1 / (1 + math.exp(-x)):.2f}"
    return f"{math.exp(x) if s.ratio else x:.2f}"


def _effect_text(s: Synthesis, y: float, lo: float, hi: float) -> str:
    a, b, c = sorted((_shown(s, lo), _shown(s, y), _shown(s, hi)))
    return f"{_number(s, b)} [{_number(s, a)}, {_number(s, c)}]"


def _arm(row: pd.Series, arm: str) -> str:
    events, n = row.get(f"events_{arm}"), row.get(f"n_{arm}")
    if pd.notna(events) and pd.notna(n):
        return f"{int(events)}/{int(n)}"
    if arm == "t" and pd.notna(row.get("events")) and pd.notna(row.get("n")):
        return f"{int(row['events'])}/{int(row['n'])}"
    if pd.notna(row.get(f"mean_{arm}")) and pd.notna(row.get(f"sd_{arm}")) and pd.notna(n):
        return f"{row[f'mean_{arm}']:.1f} ({row[f'sd_{arm}']:.1f}) {int(n)}"
    if pd.isna(n):
        n = row.get(f"randomized_{arm}")  # analysed not reported: the number randomized
    return f"{int(n)}" if pd.notna(n) else "n/r"


def _arm_header(s: Synthesis) -> str:
    if s.k and s.studies.get("events_t", pd.Series(dtype=float)).notna().any():
        return "events/total"
    if s.k and s.studies.get("mean_t", pd.Series(dtype=float)).notna().any():
        return "mean (SD) n"
    return "n"


def _label(row: pd.Series) -> str:
    label = str(row["study"])
    if row.get("source_kind") == "secondary summary":
        label += SECONDARY_MARK
    if isinstance(row.get("derivation"), str) and row["derivation"]:
        label += DERIVED_MARK
    return label


def _rows(s: Synthesis) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("study", r) for _, r in s.studies.iterrows()]
    if s.model is not None and s.k > 1:
        rows.append(("diamond", s.model))
        if s.model.pi_low is not None:
            rows.append(("pi", s.model))
        rows.append(("note", heterogeneity_text(s.model)))
    elif s.k == 1:
        rows.append(("note", "k = 1: the study's own estimate is the result (no pooling)"))
    for _, r in s.narrative.iterrows():
        rows.append(("narrative", r))
    if not s.k and not len(s.narrative):
        rows.append(("note", "No included study with usable numbers"))
    return rows


def forest(ax: Axes, s: Synthesis, *, intervention: str = "Intervention", comparator: str = "Control") -> Axes:
    """Draw one synthesis on ``ax`` (text columns on ``ax``, the effect panel as an inset sharing its rows);
    returns the inset."""
    rows = _rows(s)
    n = len(rows)
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ylim = (n + 0.2, -1.7)
    ax.set_ylim(*ylim)
    x_study, x_out, x_t, x_c, x_eff, x_w = 0.0, 0.14, 0.40, 0.505, 0.785, 1.0
    panel = ax.inset_axes((0.525, 0.0, 0.245, 1.0))
    panel.set_ylim(*ylim)

    def text(x: float, i: float, value: str, **kw) -> None:
        kw.setdefault("va", "center")
        kw.setdefault("fontsize", FONT)
        kw.setdefault("color", INK)
        ax.text(x, i, value, **kw)

    arms = _arm_header(s)
    for x, label, ha in ((x_study, "Study", "left"), (x_out, "Outcome, time point", "left"),
                         (x_t, f"{intervention}\n{arms}", "right"),
                         (x_c, "" if s.single_arm else f"{comparator}\n{arms}", "right"),
                         (x_eff, f"{'Proportion' if s.single_arm else s.measure or 'Effect'} [95% CI]", "left"),
                         (x_w, "Weight", "right")):
        if label:
            text(x, -1.05, label, ha=ha, fontweight="bold")
    ax.plot([0, 1], [-0.55, -0.55], color=INK, lw=0.8)

    lows, highs = [0.0], [0.0]
    for kind, payload in rows:
        if kind == "study":
            r = payload
            half = Z * math.sqrt(r["vi"])
            a, b = sorted((_shown(s, r["yi"] - half), _shown(s, r["yi"] + half)))
            lows.append(a)
            highs.append(b)
        elif kind in ("diamond", "pi"):
            res = payload
            lo, hi = (res.ci_low, res.ci_high) if kind == "diamond" else (res.pi_low, res.pi_high)
            lows.append(min(_shown(s, lo), _shown(s, hi)))
            highs.append(max(_shown(s, lo), _shown(s, hi)))
    lo_x, hi_x = min(lows), max(highs)
    if s.ratio:  # keep 0.5 and 2 on the axis so a reader always sees both sides of 1
        lo_x, hi_x = min(lo_x, math.log(0.5)), max(hi_x, math.log(2))
    pad = 0.06 * (hi_x - lo_x or 1)
    lo_x, hi_x = lo_x - pad, hi_x + pad

    max_w = float(s.studies["weight"].max()) if s.k else 100.0
    for i, (kind, payload) in enumerate(rows):
        if kind == "study":
            r = payload
            y, half = float(r["yi"]), Z * math.sqrt(float(r["vi"]))
            text(x_study, i, _label(r))
            text(x_out, i, _cut(str(r.get("outcome_short") or r.get("outcome") or ""), 34), color=GREY)
            text(x_t, i, _arm(r, "t"), ha="right")
            text(x_c, i, _arm(r, "c") if not s.single_arm else "", ha="right")
            text(x_eff, i, _effect_text(s, y, y - half, y + half), family="DejaVu Sans Mono")
            text(x_w, i, f"{r['weight']:.1f}%", ha="right")
            a, b = sorted((_shown(s, y - half), _shown(s, y + half)))
            panel.plot([max(a, lo_x), min(b, hi_x)], [i, i], color=INK, lw=1.0, solid_capstyle="butt")
            panel.scatter([_shown(s, y)], [i], s=14 + 110 * float(r["weight"]) / max_w, marker="s",
                          color=ACCENT, zorder=3, linewidths=0)
        elif kind == "diamond":
            res = payload
            model = "Common-effect model" if s.method == "FE" else f"Random-effects model ({s.method})"
            text(x_study, i, f"{model}{', HKSJ' if s.hksj else ''}, k = {s.k}", fontweight="bold")
            text(x_eff, i, _effect_text(s, res.estimate, res.ci_low, res.ci_high), family="DejaVu Sans Mono",
                 fontweight="bold")
            text(x_w, i, "100%", ha="right", fontweight="bold")
            a, b = sorted((_shown(s, res.ci_low), _shown(s, res.ci_high)))
            m = _shown(s, res.estimate)
            panel.add_patch(Polygon([(a, i), (m, i - 0.34), (b, i), (m, i + 0.34)], closed=True, facecolor=INK,
                                    edgecolor=INK, lw=1.0, zorder=3))
        elif kind == "pi":
            res = payload
            text(x_study, i, "95% prediction interval", color=GREY)
            a, b = sorted((_shown(s, res.pi_low), _shown(s, res.pi_high)))
            text(x_eff, i, f"[{_number(s, a)}, {_number(s, b)}]", family="DejaVu Sans Mono", color=GREY)
            panel.plot([max(a, lo_x), min(b, hi_x)], [i, i], color=GREY, lw=2.2, solid_capstyle="butt")
        elif kind == "narrative":
            r = payload
            text(x_study, i, _label(r), color=GREY)
            text(x_out, i, f"no usable numbers: {r['reported_direction']}"[:60], color=GREY, style="italic")
        else:
            text(x_study, i, str(payload), color=GREY)

    if not s.single_arm:
        panel.plot([0.0, 0.0], [-0.5, n - 0.5], color=INK, lw=0.8, zorder=1)
    _axis(panel, s, lo_x, hi_x)
    if not s.single_arm:
        good, bad = f"Favours {in_sentence(intervention)}", f"Favours {in_sentence(comparator)}"
        left, right = (good, bad) if s.lower_is_better else (bad, good)
        for label, ha, dx in ((f"\u2190 {left}", "right", -4), (f"{right} \u2192", "left", 4)):
            panel.annotate(label, xy=(0.0, 0.0), xycoords=("data", "axes fraction"), xytext=(dx, -40),
                           textcoords="offset points", ha=ha, va="top", fontsize=FONT, color=INK)
    return panel


def forest_height(s: Synthesis) -> float:
    """Inches a figure needs for ``forest`` of ``s`` at the house row height (with its axis)."""
    return 1.1 + 0.3 * len(_rows(s))


def footnotes(s: Synthesis, note: str | None = None) -> list[str]:
    """The lines under a forest plot: what the marks mean, the certainty, a sample note."""
    lines = [f"{SECONDARY_MARK} a number from a news or secondary summary, not the paper; {DERIVED_MARK} a number "
             "derived from reported ones (see the extraction table). n/r: not reported."]
    if s.certainty is not None:
        lines.append(f"Certainty of evidence (GRADE): {s.certainty.level}" + (
            f" ({s.certainty.reasons()})" if s.certainty.reasons() else ""))
    if note:
        lines.insert(0, note)
    return lines


def _wrap(line: str, width: int = 150) -> list[str]:
    import textwrap

    return textwrap.wrap(line, width) or [""]


def forest_figure(s: Synthesis, path_stem: str | Path, *, title: str | None = None, note: str | None = None,
                  intervention: str = "Intervention", comparator: str = "Control") -> plt.Figure:
    """A figure for one synthesis' forest plot with its title and footnotes; writes ``<path_stem>.png``
    and ``.svg`` and returns the Figure."""
    foot = [w for line in footnotes(s, note) for w in _wrap(line)]
    axis = 0.9  # the effect axis, its label and the "Favours" captions below the last row
    height = forest_height(s) + axis + 0.22 * len(foot) + (0.4 if title else 0)
    fig = plt.figure(figsize=(WIDTH, height))
    top = 1 - (0.45 if title else 0.1) / height
    bottom = (axis + 0.2 + 0.22 * len(foot)) / height
    ax = fig.add_axes((0.02, bottom, 0.96, top - bottom))
    forest(ax, s, intervention=intervention, comparator=comparator)
    if title:
        fig.text(0.02, 1 - 0.25 / height, title, fontsize=FONT + 2, fontweight="bold", va="center", color=INK)
    for j, line in enumerate(foot):
        fig.text(0.02, (0.15 + 0.22 * (len(foot) - 1 - j)) / height, line, fontsize=FONT - 0.5, color=GREY)
    save_figure(fig, path_stem)
    return fig


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _ticks(panel: Axes, candidates: Sequence[float], scale, centre: float, lo: float, hi: float) -> None:
    """Tick labels at round values, from ``centre`` outwards, none closer than a sixth of the axis so
    labels never overlap on a narrow panel."""
    gap = (hi - lo) / 6
    inside = [t for t in candidates if lo <= scale(t) <= hi]
    kept = [t for t in inside if t == centre]
    for side in ([t for t in inside if t > centre], [t for t in reversed(inside) if t < centre]):
        last = scale(centre)
        for t in side:
            if abs(scale(t) - last) >= gap:
                kept.append(t)
                last = scale(t)
    kept.sort()
    panel.set_xticks([scale(t) for t in kept])
    panel.set_xticklabels([f"{t:g}" for t in kept])


def _axis(panel: Axes, s: Synthesis, lo: float, hi: float) -> None:
    """Ticks and label of an effect axis from ``lo`` to ``hi`` (plot scale) for syntheses like ``s``."""
    panel.set_xlim(lo, hi)
    panel.set_yticks([])
    for side in ("left", "right", "top"):
        panel.spines[side].set_visible(False)
    panel.patch.set_alpha(0)
    panel.tick_params(axis="x", labelsize=FONT, colors=INK)
    if s.ratio:
        _ticks(panel, (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100), math.log, 1.0, lo, hi)
    elif s.measure == "PLO":
        _ticks(panel, (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99), lambda t: math.log(t / (1 - t)), 0.5,
               lo, hi)
    name = "Proportion" if s.single_arm else MEASURE_NAMES.get(s.measure or "", s.measure or "")
    scale = " (log scale)" if s.ratio else " (logit scale)" if s.measure == "PLO" else ""
    panel.set_xlabel(name + scale, fontsize=FONT, color=INK)


def overview(ax: Axes, items: Sequence[Synthesis], labels: dict[str, str]) -> None:
    """Every synthesis in ``items`` (one measure) as a row: what, k, participants, estimate [CI], certainty."""
    n = len(items)
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ylim = (n - 0.4, -1.6)
    ax.set_ylim(*ylim)
    with_estimate = [s for s in items if s.model is not None]
    panel = ax.inset_axes((0.555, 0.0, 0.205, 1.0)) if with_estimate else None
    for x, label, ha in ((0.0, "Disorder, outcome", "left"), (0.30, "Comparison (design)", "left"),
                         (0.49, "k", "right"), (0.535, "n", "right"), (0.775, "Estimate [95% CI]", "left"),
                         (1.0, "Certainty", "right")):
        ax.text(x, -1.0, label, ha=ha, va="center", fontsize=FONT, fontweight="bold", color=INK)
    ax.plot([0, 1], [-0.55, -0.55], color=INK, lw=0.8)
    points = [0.0]
    for i, s in enumerate(items):
        what = f"{labels.get(s.disorder, s.disorder)}, {labels.get(s.outcome_domain, s.outcome_domain).lower()}"
        ax.text(0.0, i, _cut(what, 42), va="center", fontsize=FONT, color=INK)
        ax.text(0.30, i, _cut(f"{s.comparison.replace('_', ' ')} ({s.design_group})", 26), va="center", fontsize=FONT, color=GREY)
        ax.text(0.49, i, str(s.k), ha="right", va="center", fontsize=FONT, color=INK)
        ax.text(0.535, i, "n/r" if s.participants is None else str(s.participants), ha="right", va="center",
                fontsize=FONT, color=INK)
        ax.text(1.0, i, s.certainty.level if s.certainty else "", ha="right", va="center", fontsize=FONT, color=INK)
        if s.model is None or panel is None:
            ax.text(0.775, i, "no estimate", va="center", fontsize=FONT, color=GREY, style="italic")
            continue
        a, b = sorted((_shown(s, s.model.ci_low), _shown(s, s.model.ci_high)))
        m = _shown(s, s.model.estimate)
        ax.text(0.775, i, f"{_number(s, m)} [{_number(s, a)}, {_number(s, b)}]", va="center", fontsize=FONT,
                color=INK, family="DejaVu Sans Mono")
        panel.plot([a, b], [i, i], color=INK, lw=1.0)
        panel.scatter([m], [i], s=30, marker="D" if s.k > 1 else "s", color=ACCENT, zorder=3)
        points += [a, b]
    if panel is None:
        return
    panel.set_ylim(*ylim)
    lo, hi = min(points), max(points)
    if with_estimate[0].ratio:
        lo, hi = min(lo, math.log(0.5)), max(hi, math.log(2))
    pad = 0.06 * (hi - lo or 1)
    if not with_estimate[0].single_arm:
        panel.plot([0.0, 0.0], [-0.5, n - 0.5], color=INK, lw=0.8)
    _axis(panel, with_estimate[0], lo - pad, hi + pad)


def overview_figure(items: Sequence[Synthesis], labels: dict[str, str], path_stem: str | Path, *,
                    note: str | None = None) -> plt.Figure | None:
    """One panel per measure (syntheses without an estimate in a last panel); writes PNG and SVG.
    None when there is no synthesis."""
    if not items:
        return None
    groups: dict[str, list[Synthesis]] = {}
    for s in sorted(items, key=lambda s: s.model is None):  # stable: protocol order, the estimate-less last
        groups.setdefault(s.measure or "no estimate", []).append(s)
    heights = [(1.5 if key != "no estimate" else 0.8) + 0.3 * len(g) for key, g in groups.items()]
    extra = 0.7 if note else 0.3  # the last panel's axis label, then the note
    fig = plt.figure(figsize=(WIDTH, sum(heights) + extra))
    total = sum(heights) + extra
    y = 1 - 0.1 / total
    for g, h in zip(groups.values(), heights):
        ax = fig.add_axes((0.02, y - h / total, 0.96, (h - 0.25) / total))
        overview(ax, g, labels)
        y -= h / total
    if note:
        fig.text(0.02, 0.15 / total, note, fontsize=FONT - 0.5, color=GREY)
    save_figure(fig, path_stem)
    return fig
