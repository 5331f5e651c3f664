"""effects.effect_sizes against metafor escalc's published values (tests/data/metafor_reference_values.json)."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.meta_analysis import effectsize_2proportions

from reviewkit.effects import EffectSizeError, effect_sizes

REF = json.loads((Path(__file__).parent / "data" / "metafor_reference_values.json").read_text())["datasets"]


def tol(decimals):
    return 0.5 * 10**-decimals + 1e-12


def bcg_frame():
    b = REF["bcg"]["inputs"]
    return pd.DataFrame({
        "study": b["author"],
        "events_t": b["tpos"], "n_t": np.add(b["tpos"], b["tneg"]),
        "events_c": b["cpos"], "n_c": np.add(b["cpos"], b["cneg"]),
    })


def fine_frame():
    f = REF["statsmodels_fine1993"]["inputs_escalc"]
    return pd.DataFrame({"events_t": f["e2i"], "n_t": f["nei"], "events_c": f["c2i"], "n_c": f["nci"]})


def test_bcg_log_rr_matches_escalc():
    ref = REF["bcg"]["escalc"]["RR"]
    out = effect_sizes(bcg_frame(), "RR")
    np.testing.assert_allclose(out["yi"], ref["yi"], atol=tol(ref["yi_decimals"]))
    np.testing.assert_allclose(out["vi"], ref["vi"], atol=tol(ref["vi_decimals"]))
    s = ref["study1_summary"]
    assert math.sqrt(out["vi"][0]) == pytest.approx(s["sei"], abs=tol(4))
    assert out["yi"][0] / math.sqrt(out["vi"][0]) == pytest.approx(s["zi"], abs=tol(4))
    assert (out["effect_from"] == "2x2").all() and not out["flipped"].any()


def test_bcg_log_or_matches_escalc():
    ref = REF["bcg"]["escalc"]["OR_first7"]
    out = effect_sizes(bcg_frame(), "OR").iloc[:7]
    np.testing.assert_allclose(out["yi"], ref["yi"], atol=tol(4))
    np.testing.assert_allclose(out["vi"], ref["vi"], atol=tol(4))


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_fine1993_full_precision(measure):
    ref = REF["statsmodels_fine1993"]["results"]["metafor_escalc"][measure]
    out = effect_sizes(fine_frame(), measure)
    np.testing.assert_allclose(out["yi"], ref["yi"], rtol=1e-13)
    np.testing.assert_allclose(out["vi"], ref["vi"], rtol=1e-13)


@pytest.mark.parametrize("measure,sm", [("OR", "odds-ratio"), ("RR", "risk-ratio"), ("RD", "diff")])
def test_agrees_with_statsmodels_without_zero_cells(measure, sm):
    # statsmodels computes the same escalc formulas when no cell is zero.
    df = fine_frame()
    yi, vi = effectsize_2proportions(df.events_t, df.n_t, df.events_c, df.n_c, statistic=sm)
    out = effect_sizes(df, measure)
    np.testing.assert_allclose(out["yi"], yi, rtol=1e-12)
    np.testing.assert_allclose(out["vi"], vi, rtol=1e-12)


def test_hine_risk_differences_in_percentage_points():
    h = REF["hine1989"]
    df = pd.DataFrame({"events_t": h["inputs"]["ai"], "n_t": h["inputs"]["n1i"],
                       "events_c": h["inputs"]["ci"], "n_c": h["inputs"]["n2i"]})
    out = effect_sizes(df, "RD")
    ref = h["results"]["RD_escalc_pct"]
    np.testing.assert_allclose(100 * out["yi"], ref["yi"], atol=tol(4))
    np.testing.assert_allclose(1e4 * out["vi"], ref["vi"], atol=tol(4))


def test_chen_peace_hedges_g_exact_correction_ls_variance():
    c = REF["statsmodels_chen_peace_smd"]
    out = effect_sizes(pd.DataFrame(c["inputs"]), "SMD")
    ref = c["results"]["metafor_SMD"]
    np.testing.assert_allclose(out["yi"], ref["yi"], rtol=1e-10)
    np.testing.assert_allclose(out["vi"], ref["vi_LS"], rtol=1e-10)


def test_mean_difference():
    df = pd.DataFrame({"mean_t": [10.0], "sd_t": [2.0], "n_t": [20], "mean_c": [8.0], "sd_c": [3.0], "n_c": [30]})
    out = effect_sizes(df, "MD")
    assert out["yi"][0] == 2.0
    assert out["vi"][0] == pytest.approx(4 / 20 + 9 / 30)


def test_zero_cell_gets_half_in_all_four_cells_only_in_that_table():
    df = pd.DataFrame({"events_t": [0, 5], "n_t": [10, 10], "events_c": [3, 3], "n_c": [10, 10]})
    out = effect_sizes(df, "OR")
    assert out["yi"][0] == pytest.approx(math.log((0.5 * 7.5) / (10.5 * 3.5)))
    assert out["vi"][0] == pytest.approx(1 / 0.5 + 1 / 10.5 + 1 / 3.5 + 1 / 7.5)
    assert out["yi"][1] == pytest.approx(math.log((5 * 7) / (5 * 3)))
    assert list(out["effect_from"]) == ["2x2 +0.5", "2x2"]
    rr = effect_sizes(df, "RR")
    assert rr["yi"][0] == pytest.approx(math.log(0.5 / 11) - math.log(3.5 / 11))


def test_reported_ratio_and_difference_with_ci():
    df = pd.DataFrame({"study": ["A", "B"], "measure": ["OR", "MD"],
                       "estimate": [0.80, 10.1], "ci_low": [0.31, 1.1], "ci_high": [2.10, 19.0]})
    out = effect_sizes(df.iloc[[0]], "OR")
    assert out["yi"].iloc[0] == pytest.approx(math.log(0.80))
    assert out["vi"].iloc[0] == pytest.approx(((math.log(2.10) - math.log(0.31)) / (2 * 1.959964)) ** 2, rel=1e-6)
    md = effect_sizes(df.iloc[[1]], "MD")
    assert md["yi"].iloc[0] == 10.1
    assert md["vi"].iloc[0] == pytest.approx(((19.0 - 1.1) / (2 * 1.959964)) ** 2, rel=1e-6)
    assert md["effect_from"].iloc[0] == "reported CI"


def test_chinn_conversion_from_or_to_smd():
    df = pd.DataFrame({"measure": ["OR"], "estimate": [2.0], "ci_low": [1.0], "ci_high": [4.0]})
    out = effect_sizes(df, "SMD")
    assert out["yi"][0] == pytest.approx(math.log(2) * math.sqrt(3) / math.pi)
    assert out["vi"][0] == pytest.approx((math.log(4) / (2 * 1.959964)) ** 2 * 3 / math.pi**2, rel=1e-6)
    counts = effect_sizes(pd.DataFrame({"events_t": [5], "n_t": [10], "events_c": [2], "n_c": [10]}), "SMD")
    assert counts["yi"][0] == pytest.approx(math.log(5 * 8 / (5 * 2)) * math.sqrt(3) / math.pi)
    assert counts["effect_from"][0] == "2x2 OR -> SMD (Chinn)"


def test_direction_harmonised_so_positive_favours_ketamine():
    df = pd.DataFrame({"measure": ["OR", "OR"], "favourable": ["lower", "higher"],
                       "estimate": [0.5, 0.5], "ci_low": [0.25, 0.25], "ci_high": [1.0, 1.0]})
    out = effect_sizes(df, "OR")
    assert out["yi"][0] == pytest.approx(math.log(2)) and out["flipped"][0]
    assert out["yi"][1] == pytest.approx(math.log(0.5)) and not out["flipped"][1]


@pytest.mark.parametrize("row,column", [
    ({"events_t": 11, "n_t": 10, "events_c": 1, "n_c": 10}, "events_t"),
    ({"events_t": 1, "n_t": 10, "events_c": -1, "n_c": 10}, "events_c"),
    ({"events_t": 1, "n_t": 1, "events_c": 1, "n_c": 10}, "n_t"),
    ({"mean_t": 1.0, "sd_t": -1.0, "n_t": 10, "mean_c": 1.0, "sd_c": 1.0, "n_c": 10}, "sd_t"),
    ({"measure": "OR", "estimate": 3.0, "ci_low": 0.5, "ci_high": 2.0}, "ci_high"),
    ({"measure": "MD", "estimate": -3.0, "ci_low": -2.0, "ci_high": 2.0}, "ci_low"),
    ({"measure": "OR", "estimate": 0.0, "ci_low": 0.0, "ci_high": 2.0}, "estimate"),
    ({"measure": "XYZ", "estimate": 1.0, "ci_low": 0.5, "ci_high": 2.0}, "measure"),
])
def test_bad_input_names_study_and_column(row, column):
    df = pd.DataFrame([{"study": "Smith 2020", **row}])
    with pytest.raises(EffectSizeError, match=rf"Smith 2020.*'{column}'"):
        effect_sizes(df, "OR")


def test_unknown_measure_and_missing_data():
    df = pd.DataFrame({"study": ["Smith 2020"], "events_t": [1], "n_t": [10], "events_c": [2], "n_c": [10]})
    with pytest.raises(EffectSizeError, match="unknown measure 'HR'"):
        effect_sizes(df, "HR")
    with pytest.raises(EffectSizeError, match="Smith 2020: 2x2 counts cannot give a mean difference"):
        effect_sizes(df, "MD")
    with pytest.raises(EffectSizeError, match="Smith 2020: no complete effect data"):
        effect_sizes(pd.DataFrame({"study": ["Smith 2020"], "n_t": [10]}), "OR")
    with pytest.raises(EffectSizeError, match="'HR': cannot be expressed as OR"):
        effect_sizes(pd.DataFrame({"study": ["X"], "measure": ["HR"], "estimate": [0.5],
                                   "ci_low": [0.2], "ci_high": [0.9]}), "OR")
