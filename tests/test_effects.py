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
    with pytest.raises(EffectSizeError, match="unknown measure 'XYZ'"):
        effect_sizes(df, "XYZ")
    with pytest.raises(EffectSizeError, match="Smith 2020: 2x2 counts cannot give a hazard ratio"):
        effect_sizes(df, "HR")
    with pytest.raises(EffectSizeError, match="Smith 2020: 2x2 counts cannot give a mean difference"):
        effect_sizes(df, "MD")
    with pytest.raises(EffectSizeError, match="Smith 2020: no complete effect data"):
        effect_sizes(pd.DataFrame({"study": ["Smith 2020"], "n_t": [10]}), "OR")
    with pytest.raises(EffectSizeError, match="'HR': cannot be expressed as OR"):
        effect_sizes(pd.DataFrame({"study": ["X"], "measure": ["HR"], "estimate": [0.5],
                                   "ci_low": [0.2], "ci_high": [0.9]}), "OR")


def test_single_arm_proportions_plo_and_pr_with_zero_correction():
    df = pd.DataFrame({"study": ["A", "B", "C"], "events": [3, 0, 10], "n": [10, 8, 10]})
    plo = effect_sizes(df, "PLO")
    assert plo.yi[0] == pytest.approx(math.log(3 / 7)) and plo.vi[0] == pytest.approx(1 / 3 + 1 / 7)
    assert plo.yi[1] == pytest.approx(math.log(0.5 / 8.5)) and plo.effect_from[1] == "events/n +0.5"
    pr = effect_sizes(df, "PR")
    assert pr.yi[0] == 0.3 and pr.vi[0] == pytest.approx(0.3 * 0.7 / 10)
    # escalc adds 1/2 to events and non-events for PR too: (10.5 / 11), not 1 with variance 0.
    assert pr.yi[2] == pytest.approx(10.5 / 11) and pr.vi[2] > 0
    with pytest.raises(EffectSizeError, match="A: one arm's events/n give a proportion"):
        effect_sizes(df, "OR")
    with pytest.raises(EffectSizeError, match="more events than participants"):
        effect_sizes(pd.DataFrame({"study": ["X"], "events": [11], "n": [10]}), "PLO")


def test_hazard_ratio_rows_pool_by_generic_inverse_variance():
    # A reported HR with its 95% CI (no arm data can give one): log HR and the CI's SE.
    df = pd.DataFrame({"study": ["Trial 2019", "Other 2021"], "measure": ["HR", "HR"],
                       "estimate": [0.47, 0.8], "ci_low": [0.24, None], "ci_high": [0.92, None],
                       "se": [None, 0.2]})
    out = effect_sizes(df, "HR")
    assert out.yi[0] == pytest.approx(math.log(0.47))
    assert out.vi[0] == pytest.approx(((math.log(0.92) - math.log(0.24)) / (2 * 1.959963984540054)) ** 2)
    assert out.vi[1] == pytest.approx(0.04) and list(out.effect_from) == ["reported CI", "reported SE"]
    assert list(out.derived) == [True, False]


def test_reported_estimate_with_p_value_or_other_ci_level():
    df = pd.DataFrame({"measure": ["MD", "RR"], "estimate": [3.8, 2.0], "p_value": [0.008, None],
                       "ci_low": [None, 1.2], "ci_high": [None, 3.3], "ci_level": [None, 0.9]})
    md = effect_sizes(df.iloc[[0]], "MD")
    assert md.vi.iloc[0] == pytest.approx((3.8 / 2.652069807902199) ** 2) and md.effect_from.iloc[0] == "reported p"
    rr = effect_sizes(df.iloc[[1]], "RR")
    assert rr.vi.iloc[0] == pytest.approx(((math.log(3.3) - math.log(1.2)) / (2 * 1.6448536269514722)) ** 2)
    with pytest.raises(EffectSizeError, match="'p_value'"):
        effect_sizes(pd.DataFrame({"study": ["S"], "measure": ["MD"], "estimate": [1.0], "p_value": [1.5]}), "MD")
    with pytest.raises(EffectSizeError, match="no standard error from a p-value"):
        effect_sizes(pd.DataFrame({"study": ["S"], "measure": ["MD"], "estimate": [0.0], "p_value": [0.5]}), "MD")


def test_drop00_leaves_double_zero_tables_out_as_escalc():
    df = pd.DataFrame({"events_t": [0, 2, 10], "n_t": [10, 10, 10], "events_c": [0, 3, 10], "n_c": [10, 10, 10]})
    kept = effect_sizes(df, "OR")
    assert kept.yi.notna().all() and kept.yi[0] == 0.0
    dropped = effect_sizes(df, "OR", drop00=True)
    assert dropped.yi.isna().tolist() == [True, False, True] and "dropped" in dropped.effect_from[0]


def test_derivations_say_how_and_follow_the_handbook():
    from scipy import stats

    from reviewkit.effects import (
        log_or_from_smd,
        sd_from_ci,
        sd_from_p,
        sd_from_se,
        se_from_ci,
        se_from_p,
        smd_from_log_or,
    )
    se = se_from_ci(1.0, 5.0, df=45)
    assert se.value == pytest.approx(4 / (2 * stats.t.ppf(0.975, 45))) and "t(45)" in se.how and se.derived
    assert se_from_ci(0.5, 2.0, ratio=True).value == pytest.approx(math.log(4) / (2 * stats.norm.ppf(0.975)))
    assert "log ratio" in se_from_ci(0.5, 2.0, ratio=True).how
    # Handbook 6.5.2.3 worked example: MD 3.8, P = 0.008, 25 vs 22: t = 2.78 with 45 df, SE = 1.37.
    p_se = se_from_p(3.8, 0.008, df=45)
    assert p_se.value == pytest.approx(1.37, abs=0.005)
    assert sd_from_p(3.8, 0.008, 25, 22).value == pytest.approx(1.37 / math.sqrt(1 / 25 + 1 / 22), abs=0.02)
    assert sd_from_se(2.0, 25).value == 10.0 and "sqrt(25)" in sd_from_se(2.0, 25).how
    small = sd_from_ci(1.0, 5.0, 25, 22)  # fewer than 60 per group: t(45)
    big = sd_from_ci(1.0, 5.0, 250, 220)  # normal quantile
    assert "t(45)" in small.how and "normal" in big.how
    assert small.value == pytest.approx(se.value / math.sqrt(1 / 25 + 1 / 22))
    assert sd_from_ci(1.0, 5.0, 16).value == pytest.approx(math.sqrt(16) * 4 / (2 * stats.t.ppf(0.975, 15)))
    smd = smd_from_log_or(math.log(2), 0.1)
    back = log_or_from_smd(smd.value, smd.variance)
    assert back.value == pytest.approx(math.log(2)) and back.variance == pytest.approx(0.1)
    with pytest.raises(EffectSizeError, match="between 0 and 1"):
        se_from_p(1.0, 0.0)
