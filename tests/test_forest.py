"""forest.forest draws from the fitted model and writes PNG + SVG."""

import math

import pandas as pd

from reviewkit.forest import forest, heterogeneity_text
from reviewkit.meta import pool, pool_by_disorder

from helpers import PROTOCOL


def analysis(measure="OR"):
    e = pd.DataFrame({
        "study": ["A 2020", "B 2021", "C 2019"], "disorder": ["aud", "aud", "cocaine"],
        "yi": [0.9, 0.2, 2.0], "vi": [0.6, 0.24, 0.52], "yi_measure": measure,
        "events_t": [14, None, 13], "n_t": [17, None, 27], "events_c": [15, None, 3], "n_c": [23, None, 28],
        "secondary_source": [True, False, False], "outcome_short": ["abstinent", "no relapse", "abstinent"],
    })
    return pool_by_disorder(e, disorders=tuple(PROTOCOL.searches))


def svg_text(path):
    return path.read_text(encoding="utf-8")


def test_writes_png_and_svg_with_every_element(tmp_path):
    fig = forest(analysis(), tmp_path / "fp", title="Test", note="Sample corpus, not a complete search.",
                 group_labels=PROTOCOL.labels, intervention=PROTOCOL.intervention_label)
    png, svg = tmp_path / "fp.png", tmp_path / "fp.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg_text(svg)
    for expected in ("A 2020\u2020", "14/17", "n/r", "Opioid use disorder", "Gambling disorder",
                     "No included comparative study with usable numbers", "Subtotal (k = 2)",
                     "k = 1: the study", "95% prediction interval", "Test for subgroup differences",
                     "Favours ketamine", "Favours control", "Odds ratio (log scale)", "Sample corpus"):
        assert expected in text, expected
    assert fig.axes  # the Figure is returned for notebooks to display


def test_ratio_effects_are_back_transformed_in_the_text(tmp_path):
    a = analysis()
    forest(a, tmp_path / "fp")
    o = a.overall
    expected = f"{math.exp(o.estimate):.2f} [{math.exp(o.ci_low):.2f}, {math.exp(o.ci_high):.2f}]"
    assert expected in svg_text(tmp_path / "fp.svg")


def test_difference_measures_use_a_linear_axis(tmp_path):
    forest(analysis("MD"), tmp_path / "md")
    text = svg_text(tmp_path / "md.svg")
    assert "Mean difference" in text and "log scale" not in text


def test_heterogeneity_line_reports_tau2_i2_q_and_p():
    res = pool([0.1, 0.5, 0.9], [0.05, 0.05, 0.05], method="REML")
    line = heterogeneity_text(res)
    assert line.startswith(f"Heterogeneity: \u03c4\u00b2 = {res.tau2:.3f}; I\u00b2 = {res.i2:.0f}%; Q = {res.q:.2f} (df = 2)")
    assert "single study" in heterogeneity_text(pool([0.1], [0.05]))
