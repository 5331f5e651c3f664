"""Syntheses: which results are pooled together, on what scale, and what the sample's syntheses say."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from reviewkit.cli import main
from reviewkit.meta import PoolingError, pool
from reviewkit.review import Review
from reviewkit.synthesis import sensitivity, syntheses, synthesis_table

from helpers import EXAMPLE, PROTOCOL, extraction_with


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    return Review(EXAMPLE, output_dir=tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def sample(review):
    return {s.key: s for s in review.syntheses()}


def log_or(a, n1, c, n2):
    return math.log(a / (n1 - a) / (c / (n2 - c)))


def test_every_synthesis_holds_one_disorder_domain_comparison_and_design(review, sample):
    rows = review.extraction.set_index("row_id")
    design = dict(zip(review.studies["study_id"], review.studies["design"]))
    for key, s in sample.items():
        for _, r in pd.concat([s.studies, s.narrative]).iterrows():
            row = rows.loc[r["row_id"]]
            assert (row["disorder"], row["outcome_domain"], row["comparison"]) == key[:3], r["row_id"]
            if s.design_group != "uncontrolled":
                assert design[row["study_id"]] in {"rct", "crossover_rct"} or s.design_group == "non-randomized"


def test_dose_comparisons_are_never_pooled_with_control(sample):
    dose = sample[("oud", "abstinence", "dose", "randomized", "OR")]
    assert list(dose.studies["study"]) == ["Krupitsky 2007"]
    assert_allclose(dose.model.estimate, log_or(13, 26, 6, 27), rtol=1e-12)
    assert round(dose.estimate, 2) == 3.50
    assert not [k for k in sample if k[:3] == ("oud", "abstinence", "control")]


def test_randomized_and_non_randomized_evidence_stay_apart(sample):
    rct = sample[("aud", "abstinence", "control", "randomized", "OR")]
    nrs = sample[("aud", "abstinence", "control", "non-randomized", "OR")]
    assert list(rct.studies["study"]) == ["Dakwar 2020"] and list(nrs.studies["study"]) == ["Krupitsky 1997"]
    # Dakwar 2020 counts drinking (8/17 vs 13/22): harmonised, the OR of abstinence is its inverse
    assert_allclose(rct.estimate, 1 / math.exp(log_or(8, 17, 13, 22)), rtol=1e-12)
    assert_allclose(nrs.estimate, math.exp(log_or(73, 111, 24, 100)), rtol=1e-12)


def test_excluded_reports_are_in_no_synthesis(sample):
    studies = {name for s in sample.values() for name in [*s.studies["study"], *s.narrative["study"]]}
    assert not studies & {"Das 2019", "Grant 2020"}
    assert not [k for k in sample if k[0] == "gambling"]


def test_a_narrative_result_is_its_own_synthesis_when_nothing_has_numbers(sample):
    s = sample[("oud", "withdrawal", "control", "randomized", None)]
    assert s.k == 0 and s.model is None and s.k_narrative == 1 and s.favours == "unknown"
    assert list(s.narrative["study"]) == ["Jovaisa 2006"]
    assert s.as_dict()["narrative"][0].startswith("Jovaisa 2006: favours intervention")


def test_mean_difference_from_a_small_trials_ci_uses_t(sample):
    s = sample[("aud", "days_abstinent", "control", "randomized", "MD")]
    se = (19.0 - 1.1) / (2 * stats.t.ppf(0.975, 94))
    assert_allclose(s.studies["vi"].iloc[0], se ** 2, rtol=1e-10)
    assert "t(94)" in s.studies["effect_from"].iloc[0]
    assert s.estimate == pytest.approx(10.1)


def test_hazard_ratio_and_ratio_of_means_are_shown_in_the_outcomes_direction(sample):
    hr = sample[("cocaine", "relapse", "control", "randomized", "HR")]
    assert hr.lower_is_better and hr.favours == "intervention"
    # the CI is rebuilt around the estimate from the SE the reported CI gives, so it matches to rounding
    assert_allclose(hr.estimate, 0.47, rtol=1e-12)
    assert_allclose(hr.ci, (0.24, 0.92), rtol=1e-3)
    rom = sample[("cocaine", "craving", "control", "randomized", "ROM")]
    assert_allclose(rom.estimate, 0.419, rtol=1e-12)
    assert_allclose(rom.ci, (0.214, 0.814), rtol=0.02)
    assert rom.favours == "intervention"


def test_single_arm_results_are_proportions_with_no_side(sample):
    s = sample[("aud", "withdrawal", "single_arm", "uncontrolled", "PLO")]
    assert s.single_arm and s.null is None and s.favours == "no comparison"
    # 30 of 30: metafor's escalc adds 0.5 to each cell of a zero-containing table
    assert_allclose(s.estimate, 30.5 / 31, rtol=1e-12)


def test_studies_of_one_key_are_pooled_and_weighted(tmp_path):
    extraction, included, studies = extraction_with(tmp_path, [
        ("dakwar2019-abstinence", "Alpha 2030", "rct", {"events_t": "20", "events_c": "9", "pct_t": "", "pct_c": ""}),
        ("dakwar2019-abstinence", "Beta 2031", "prospective_cohort", {}),
    ])
    found = {s.key: s for s in syntheses(extraction, included, studies, PROTOCOL, method="REML")}
    rct = found[("cocaine", "abstinence", "control", "randomized", "OR")]
    assert sorted(rct.studies["study"]) == ["Alpha 2030", "Dakwar 2019"]
    expected = pool([log_or(13, 27, 3, 28), log_or(20, 27, 9, 28)],
                    [1 / 13 + 1 / 14 + 1 / 3 + 1 / 25, 1 / 20 + 1 / 7 + 1 / 9 + 1 / 19], method="REML")
    assert_allclose((rct.model.estimate, rct.model.ci_low, rct.model.tau2),
                    (expected.estimate, expected.ci_low, expected.tau2), rtol=1e-10)
    assert_allclose(rct.studies["weight"].sum(), 100)
    assert list(found[("cocaine", "abstinence", "control", "non-randomized", "OR")].studies["study"]) == ["Beta 2031"]
    hksj = {s.key: s for s in syntheses(extraction, included, studies, PROTOCOL, method="DL", hksj=True)}
    assert hksj[rct.key].method == "DL" and hksj[rct.key].hksj


def test_single_arm_rows_counting_opposite_events_are_refused(tmp_path):
    extraction, included, studies = extraction_with(tmp_path, [
        ("shah2018-withdrawal-control", "Gamma 2030", "case_series", {"favourable": "lower"}),
    ])
    with pytest.raises(PoolingError, match="count opposite events"):
        syntheses(extraction, included, studies, PROTOCOL)


def test_sensitivity_leaves_each_study_out_and_drops_high_risk_and_secondary(tmp_path):
    extraction, included, studies = extraction_with(tmp_path, [
        ("dakwar2019-abstinence", "Alpha 2030", "rct", {"events_t": "20", "events_c": "9", "pct_t": "", "pct_c": ""}),
        ("dakwar2019-abstinence", "Delta 2032", "rct", {"events_t": "5", "events_c": "6", "pct_t": "", "pct_c": "",
                                                        "source_kind": "secondary summary", "source": "a news summary"}),
    ])
    s = next(s for s in syntheses(extraction, included, studies, PROTOCOL) if s.key[:2] == ("cocaine", "abstinence")
             and s.k == 3)
    table = sensitivity(s, high_risk={"TEST:Alpha 2030"})
    by = table.set_index("analysis")
    assert by.loc["without numbers from secondary summaries", "k"] == 2
    assert by.loc["without studies at high risk of bias", "k"] == 2
    assert len([a for a in table["analysis"] if a.startswith("leaving out")]) == 3
    y, v = s.studies["yi"].to_numpy(), s.studies["vi"].to_numpy()
    keep = s.studies["study"] != "Alpha 2030"
    assert_allclose(by.loc["without studies at high risk of bias", "estimate"],
                    math.exp(pool(y[keep], v[keep], method=s.method).estimate), rtol=1e-10)
    assert sensitivity(next(iter([x for x in syntheses(extraction, included, studies, PROTOCOL) if x.k == 1]))).empty


def test_table_and_json_interface(review, capsys):
    table = synthesis_table(review.syntheses())
    assert {"disorder", "outcome_domain", "comparison", "design", "measure", "k", "participants", "estimate",
            "ci_low", "ci_high", "pi_low", "pi_high", "certainty", "downgrades", "favours"} <= set(table.columns)
    assert main(["synthesis", "--offline", "--json", "--method", "DL", "--no-hksj"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["method"] for s in out} == {"DL"}
    assert isinstance(out, list) and len(out) == len(table)
    first = out[0]
    assert first["certainty"] in {"high", "moderate", "low", "very low"}
    assert all(set(d) >= {"domain", "levels", "reason"} for d in first["downgrades"])
    assert np.isfinite(first["estimate"])
