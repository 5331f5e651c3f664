"""Forest plots draw a synthesis on a given Axes and write PNG + SVG; the overview shows every synthesis."""

import math
import re

import matplotlib.pyplot as plt
import pytest

from reviewkit.forest import FONT, forest, forest_figure, heterogeneity_text, overview_figure
from reviewkit.meta import pool
from reviewkit.synthesis import syntheses

from helpers import PROTOCOL, extraction_with

THREE = [
    ("dakwar2019-abstinence", "Alpha 2030", "rct", {"events_t": "20", "events_c": "9", "pct_t": "", "pct_c": ""}),
    ("dakwar2019-abstinence", "Delta 2032", "rct", {"events_t": "5", "events_c": "6", "pct_t": "", "pct_c": "",
                                                    "source_kind": "secondary summary", "source": "a news summary"}),
]


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    found = syntheses(*extraction_with(tmp_path_factory.mktemp("x"), THREE), PROTOCOL)
    return {s.key: s for s in found}


@pytest.fixture(scope="module")
def pooled(items):
    return items[("cocaine", "abstinence", "control", "randomized", "OR")]


def svg_texts(path):
    """Every text element of an SVG written with svg.fonttype none, unescaped."""
    raw = re.findall(r"<text[^>]*>(.*?)</text>", path.read_text(encoding="utf-8"), flags=re.S)
    return [re.sub(r"<[^>]+>", "", t).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
            for t in raw]


def test_writes_png_and_svg_with_every_element(tmp_path, pooled):
    fig = forest_figure(pooled, tmp_path / "fp", title="Cocaine: abstinence", note="Sample, not a complete search.",
                        intervention="Ketamine", comparator="Control")
    assert (tmp_path / "fp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "\n".join(svg_texts(tmp_path / "fp.svg"))
    for expected in ("Dakwar 2019", "Alpha 2030", "Delta 2032\u2020", "13/27", "3/28", "events/total",
                     "Random-effects model (REML), k = 3", "95% prediction interval", "Heterogeneity: \u03c4\u00b2",
                     "Favours ketamine", "Favours control", "Odds ratio (log scale)", "Sample, not a complete search.",
                     "n/r: not reported", "100%"):
        assert expected in text, expected
    plt.close(fig)


def test_pooled_text_is_the_models_back_transformed_estimate(tmp_path, pooled):
    forest_figure(pooled, tmp_path / "fp")
    m = pooled.model
    expected = f"{math.exp(m.estimate):.2f} [{math.exp(m.ci_low):.2f}, {math.exp(m.ci_high):.2f}]"
    assert expected in svg_texts(tmp_path / "fp.svg")
    weights = [t for t in svg_texts(tmp_path / "fp.svg") if t.endswith("%") and t != "100%"]
    assert sum(float(w[:-1]) for w in weights) == pytest.approx(100, abs=0.2)


def test_draws_on_a_given_axes(pooled):
    fig, ax = plt.subplots(figsize=(10, 4))
    panel = forest(ax, pooled, intervention="Ketamine", comparator="Midazolam")
    assert panel in ax.child_axes and panel.get_ylim() == ax.get_ylim()
    assert "Favours midazolam" in [t.get_text().strip("\u2190\u2192 ") for t in panel.texts]
    plt.close(fig)


def test_lower_is_better_outcomes_put_the_intervention_on_the_left(tmp_path, items):
    hr = items[("cocaine", "relapse", "control", "randomized", "HR")]
    forest_figure(hr, tmp_path / "hr", intervention="Ketamine")
    texts = svg_texts(tmp_path / "hr.svg")
    assert "\u2190 Favours ketamine" in texts and "Favours control \u2192" in texts
    assert "0.47 [0.24, 0.92]" in texts and "Hazard ratio (log scale)" in texts


def test_difference_measures_use_a_linear_axis(tmp_path, items):
    md = items[("aud", "days_abstinent", "control", "randomized", "MD")]
    forest_figure(md, tmp_path / "md")
    text = "\n".join(svg_texts(tmp_path / "md.svg"))
    assert "Mean difference" in text and "log scale" not in text and "k = 1: the study" in text


def test_results_without_numbers_are_listed_not_dropped(tmp_path, items):
    s = items[("oud", "withdrawal", "control", "randomized", None)]
    forest_figure(s, tmp_path / "w")
    text = "\n".join(svg_texts(tmp_path / "w.svg"))
    assert "Jovaisa 2006" in text and "no usable numbers: favours intervention" in text


def test_every_text_is_readable_in_print(tmp_path, pooled, items):
    """At least 8 pt at the figure's own size (it is shown at natural size, 10 in wide)."""
    for fig in (forest_figure(pooled, tmp_path / "a", note="note"),
                overview_figure(list(items.values()), PROTOCOL.labels, tmp_path / "o", note="note")):
        fig.canvas.draw()
        sizes = [t.get_fontsize() for t in fig.findobj(plt.Text) if t.get_text().strip()]
        assert sizes and min(sizes) >= 8, min(sizes)
        assert fig.get_figwidth() == 10
        plt.close(fig)
    assert FONT >= 8


def overlapping_texts(fig):
    """Pairs of visible texts whose boxes overlap (tick labels included), after a draw."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(plt.Text)
             if t.get_visible() and t.get_text().strip()]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
            if box_a.x0 < box_b.x1 - 1 and box_b.x0 < box_a.x1 - 1 and box_a.y0 < box_b.y1 - 1 and box_b.y0 < box_a.y1 - 1]


def test_no_text_overlaps_another(tmp_path, pooled, items):
    for i, s in enumerate(items.values()):
        fig = forest_figure(s, tmp_path / f"f{i}", title=s.label(), note="note", intervention="Ketamine")
        assert overlapping_texts(fig) == [], s.label()
        plt.close(fig)
    fig = overview_figure(list(items.values()), PROTOCOL.labels, tmp_path / "o", note="note")
    assert overlapping_texts(fig) == []
    plt.close(fig)


def test_overview_shows_each_synthesis_once(tmp_path, items):
    fig = overview_figure(list(items.values()), PROTOCOL.labels, tmp_path / "o")
    text = "\n".join(svg_texts(tmp_path / "o.svg"))
    assert text.count("Estimate [95% CI]") == len({s.measure or "none" for s in items.values()})
    assert text.count("no estimate") == sum(s.model is None for s in items.values())
    plt.close(fig)
    assert overview_figure([], PROTOCOL.labels, tmp_path / "none") is None


def test_heterogeneity_line_reports_tau2_i2_q_and_p():
    res = pool([0.1, 0.5, 0.9], [0.05, 0.05, 0.05], method="REML")
    line = heterogeneity_text(res)
    assert line.startswith(f"Heterogeneity: \u03c4\u00b2 = {res.tau2:.3f}; I\u00b2 = {res.i2:.0f}%; Q = {res.q:.2f} (df = 2)")
    assert "single study" in heterogeneity_text(pool([0.1], [0.05]))
