"""GRADE certainty: each domain's rule, the optimal information size, the summary of findings table."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from reviewkit.grade import assess, control_risk, optimal_information_size, summary_of_findings
from reviewkit.meta import regtest
from reviewkit.review import Review
from reviewkit.synthesis import Synthesis

from helpers import EXAMPLE, PROTOCOL
from helpers import made_up_synthesis as synthesis


def downgrade(certainty, domain):
    return next(d for d in certainty.downgrades if d.domain == domain)


def test_randomized_evidence_starts_high_non_randomized_low():
    big = [2000.0] * 3
    rct = assess(synthesis([0.5, 0.6, 0.55], [0.01, 0.01, 0.01], n=big), rob=lambda s, d: "low")
    assert (rct.start, rct.level) == ("high", "high") and rct.symbol == "⊕⊕⊕⊕" and rct.reasons() == ""
    nrs = assess(synthesis([0.5, 0.6, 0.55], [0.01, 0.01, 0.01], n=big, design="non-randomized"),
                 rob=lambda s, d: "moderate")
    assert (nrs.start, nrs.level) == ("low", "low")


@pytest.mark.parametrize("judgements, design, levels, words", [
    (["low", "low", "low"], "randomized", 0, "all studies at low risk"),
    (["moderate", "low", "moderate"], "non-randomized", 0, "all studies at low risk"),
    (["moderate", "low", "low"], "randomized", 1, "concerns"),
    (["some concerns", "low", "low"], "randomized", 1, "concerns"),
    (["high", "high", "low"], "randomized", 2, "high risk carry 67%"),
    (["critical", "low", "low"], "non-randomized", 1, "concerns"),
    ([None, None, None], "randomized", 1, "not assessable"),
    (["no information", "no information", "no information"], "non-randomized", 1, "not assessable"),
])
def test_risk_of_bias_rule(judgements, design, levels, words):
    s = synthesis([0.5, 0.6, 0.55], [0.01, 0.01, 0.01], design=design)
    got = downgrade(assess(s, rob=lambda study, domain: judgements[int(study[1:])]), "risk of bias")
    assert got.levels == levels and words in got.reason


def test_single_arm_evidence_is_rated_down_for_having_no_comparison():
    s = synthesis([1.0], [0.1], design="uncontrolled", measure="PLO")
    assert downgrade(assess(s, rob=lambda *_: "low"), "risk of bias").levels == 1


def test_inconsistency_rule():
    one = assess(synthesis([0.5], [0.01]))
    assert downgrade(one, "inconsistency").levels == 0 and "one study" in downgrade(one, "inconsistency").reason
    spread = synthesis([-1.0, 1.0, 1.5, -0.8], [0.02, 0.02, 0.02, 0.02])
    assert spread.model.i2 >= 75
    assert downgrade(assess(spread), "inconsistency").levels == 2
    moderate = synthesis([0.2, 0.5, 0.8], [0.04, 0.04, 0.04])
    assert 50 <= moderate.model.i2 < 75, moderate.model.i2
    got = downgrade(assess(moderate), "inconsistency")
    assert got.levels == 1 and f"I² = {moderate.model.i2:.0f}%" in got.reason
    alike = synthesis([0.5, 0.52, 0.48], [0.02, 0.02, 0.02])
    assert downgrade(assess(alike), "inconsistency").levels == 0


def test_optimal_information_size_is_the_two_group_sample_size():
    p1 = 0.41
    p2 = p1 * 0.75
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    per_group = math.ceil(z**2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p1 - p2) ** 2)
    assert optimal_information_size(p1, "OR")[0] == 2 * per_group
    assert optimal_information_size(None, "OR")[0] == 400
    assert optimal_information_size(0.3, "MD")[0] == 400


def test_imprecision_rule():
    wide = assess(synthesis([0.1], [0.5], n=[50.0]))
    got = downgrade(wide, "imprecision")
    assert got.levels == 2 and "includes 1" in got.reason and "fewer than the OIS" in got.reason
    precise = assess(synthesis([0.5, 0.6], [0.001, 0.001], n=[1000.0, 1000.0]))
    assert downgrade(precise, "imprecision").levels == 0
    empty = synthesis([], [])
    assert downgrade(assess(empty), "imprecision").levels == 2


def test_control_risk_counts_the_domains_event():
    # an abstinence synthesis from a row counting "any drinking" (favourable lower): 13 of 22 drank
    s = synthesis([0.5], [0.2], events_c=[13.0], n_c=[22.0], favourable="lower")
    assert control_risk(s) == pytest.approx(9 / 22)


def test_indirectness_rule():
    note = assess(synthesis([0.5], [0.1], indirectness=["population: intensive care"]))
    assert downgrade(note, "indirectness").levels == 1 and "intensive care" in downgrade(note, "indirectness").reason
    both = assess(synthesis([0.5, 0.6], [0.1, 0.1], indirectness=["outcome: laboratory", None],
                            source=["secondary summary", "secondary summary"]))
    got = downgrade(both, "indirectness")
    assert got.levels == 2 and "100% of the weight" in got.reason
    minority = assess(synthesis([0.5, 0.6], [0.1, 0.01], source=["secondary summary", "full text"]))
    assert downgrade(minority, "indirectness").levels == 0


def test_publication_bias_needs_ten_studies():
    few = assess(synthesis([0.5] * 9, [0.1] * 9))
    assert downgrade(few, "publication bias").levels == 0
    assert "not assessable with 9 studies" in downgrade(few, "publication bias").reason
    rng = np.random.default_rng(7)
    vi = rng.uniform(0.01, 0.5, 12)
    yi = 0.2 + 2.0 * np.sqrt(vi) + rng.normal(0, 0.05, 12)  # small studies, big effects
    s = synthesis(list(yi), list(vi))
    p = regtest(yi, vi, method="REML").p
    got = downgrade(assess(s), "publication bias")
    assert p < 0.10 and got.levels == 1 and f"p = {p:.3f}" in got.reason


def test_certainty_never_goes_below_very_low():
    s = synthesis([-1.0, 1.0, 1.5, -0.8], [0.5, 0.5, 0.5, 0.5], design="non-randomized",
                  indirectness=["population: other"] * 4)
    c = assess(s, rob=lambda *_: "critical")
    assert c.level == "very low" and sum(d.levels for d in c.downgrades) > 2


def test_summary_of_findings_absolute_effects_per_1000():
    s = synthesis([math.log(2.0)], [0.1], events_c=[20.0], n_c=[100.0])
    s = Synthesis(**{**s.__dict__, "certainty": assess(s)})
    row = summary_of_findings([s], {"aud": "Alcohol use disorder", "abstinence": "Abstinence"}).iloc[0]
    odds = 0.2 / 0.8 * 2.0
    assert row["risk with comparator"] == "200 per 1,000"
    assert row["risk with intervention (95% CI)"].startswith(f"{1000 * odds / (1 + odds):.0f} per 1,000")
    assert row["relative effect (95% CI)"].startswith("OR 2.00")
    assert row["outcome"] == "Abstinence (6 months)" and row["population"] == "Alcohol use disorder"
    assert row["certainty"].endswith(s.certainty.level.upper())


def test_sample_certainty_follows_the_rules(tmp_path):
    review = Review(EXAMPLE, output_dir=tmp_path)
    items = {s.key: s for s in review.syntheses()}
    cocaine = items[("cocaine", "abstinence", "control", "randomized", "OR")]
    # one 55-participant trial, sources too thin to judge its risk of bias: high - 1 - 1 = low
    assert cocaine.certainty.level == "low"
    assert [d.levels for d in cocaine.certainty.downgrades] == [1, 0, 1, 0, 0]
    assert all(s.certainty is not None for s in items.values())
    sof = summary_of_findings(list(items.values()), PROTOCOL.labels)
    assert len(sof) == len(items) and sof["certainty"].str.len().gt(0).all()
    assert_allclose(control_risk(cocaine), 3 / 28)


def test_risk_of_bias_judgements_reach_the_certainty(tmp_path):
    """The project's RoB 2 table decides the risk-of-bias downgrade; an unassessed study counts as no information."""
    from reviewkit.rob import load_risk_of_bias

    review = Review(EXAMPLE, output_dir=tmp_path)
    judge = review.risk_of_bias_judge()
    assert judge("PMID:31230464", "abstinence") == "no information"
    assert judge("TEST:unknown", None) is None and review.high_risk_studies() == set()
    path = tmp_path / "risk_of_bias.csv"
    path.write_text("study_id,study,outcome_domain,tool,D1,D2,D3,D4,D5,overall,support,source\n"
                    "PMID:31230464,Dakwar 2019,,RoB 2,high,low,low,low,low,,D1: made up for a test; D2: x; D3: x; "
                    "D4: x; D5: x,test\n", encoding="utf-8")
    review = Review(EXAMPLE, output_dir=tmp_path)
    review.risk_of_bias = load_risk_of_bias(path, review.studies, tuple(PROTOCOL.outcomes))
    cocaine = {s.key: s for s in review.syntheses()}[("cocaine", "abstinence", "control", "randomized", "OR")]
    got = downgrade(cocaine.certainty, "risk of bias")
    assert got.levels == 2 and "Dakwar 2019 high" in got.reason
    assert cocaine.certainty.level == "very low"  # high - 2 (risk of bias) - 1 (imprecision)
    assert review.high_risk_studies() == {"PMID:31230464"}
