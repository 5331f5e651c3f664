"""Claims against evidence: the verdict rules, and the audit end to end offline on the bundled sample."""

import json
from pathlib import Path

import pandas as pd
import pytest

from reviewkit.citations import LocalRecords, check_reference
from reviewkit.claims import (
    PooledEffect,
    audit_claims,
    included_from_corpus,
    load_claims,
    summarize_evidence,
)
from reviewkit.cli import main
from reviewkit.errors import ReviewkitError
from reviewkit.references import parse_lines, read_references

ROOT = Path(__file__).resolve().parents[1]

TRIAL = {"record_id": "PMID:1", "pmid": "1", "doi": None, "title": "Ketamine for drinking: a randomized trial",
         "authors": ["Smith J", "Jones K"], "journal": "Addiction", "journal_iso": None, "year": 2019,
         "volume": "10", "issue": "1", "pages": "1-10"}
CITED = "Smith, J., et al. (2019). “Ketamine for drinking: a randomized trial.” Addiction, 10(1), 1-10."


def make_claims(tmp_path, **asserts):
    body = {"claims": [{"id": "X1", "section": "AUD", "disorder": "aud", "quote": "Smith found it worked.",
                        "cites": "Smith 2019", "asserts": {"design": "randomized controlled trial",
                                                           "significance": "significant", **asserts}}]}
    path = tmp_path / "claims.yml"
    path.write_text(json.dumps(body), encoding="utf-8")  # JSON is YAML
    return path


def run(tmp_path, included, pooled=None, reference=CITED, records=(TRIAL,), **asserts):
    refs = parse_lines(reference)
    claims = load_claims(make_claims(tmp_path, **asserts), refs)
    checks = {r: check_reference(r, LocalRecords(pd.DataFrame(list(records)))) for r in refs}
    return audit_claims(claims, checks, included, pooled)[0]


def included(*rows):
    return pd.DataFrame([{"record_id": "PMID:1", "disorder": "aud", "design": "rct", "n": 40, "pmid": "1",
                          "doi": None, "title": TRIAL["title"], **r} for r in rows],
                        columns=["record_id", "disorder", "design", "n", "pmid", "doi", "title"])


BENEFIT = {"aud": PooledEffect("OR", 0.5, 0.3, 0.9, 3, "ketamine")}
NULL = {"aud": PooledEffect("OR", 0.8, 0.31, 2.10, 2, "neither")}


def test_supported_when_the_cited_trial_is_real_and_the_pooled_effect_agrees(tmp_path):
    audit = run(tmp_path, included({}), BENEFIT)
    assert audit.verdict == "supported"
    assert "1 RCT" in audit.reason and "40 randomized participants" in audit.reason
    assert "pooled OR 0.50 (95% CI 0.30 to 0.90, k=3, favours ketamine)" in audit.reason


def test_overstated_when_significance_is_claimed_but_the_pooled_ci_includes_no_effect(tmp_path):
    assert run(tmp_path, included({}), NULL).verdict == "overstated"


def test_overstated_when_the_cited_study_is_not_an_rct(tmp_path):
    audit = run(tmp_path, included({"design": "case_series"}))
    assert audit.verdict == "overstated" and "case series, not an RCT" in audit.reason


def test_partly_supported_when_the_citation_has_errors(tmp_path):
    audit = run(tmp_path, included({}), BENEFIT, reference=CITED.replace("10(1)", "11(1)"))
    assert audit.citation.verdict == "exists_with_errors" and audit.verdict == "partly supported"
    assert "errors in volume" in audit.reason


def test_unsupported_when_the_cited_study_does_not_exist(tmp_path):
    audit = run(tmp_path, included({}), BENEFIT, records=({**TRIAL, "title": "Rats and alcohol", "authors": ["Doe A"]},))
    assert audit.citation.verdict == "not_found" and audit.verdict == "unsupported"
    assert audit.reason.startswith("cited Smith 2019 not found in the local records (a sample)")


def test_no_evidence_when_the_disorder_has_no_human_study(tmp_path):
    audit = run(tmp_path, included({"disorder": "oud"}))
    assert audit.verdict == "no evidence" and "no human study of ketamine for alcohol use disorder" in audit.reason


def test_evidence_counts_reports_by_design_and_randomized_participants():
    ev = summarize_evidence(included({}, {"record_id": "PMID:2", "pmid": "2", "n": None},
                                      {"record_id": "PMID:3", "pmid": "3", "design": "case_report", "n": 1}))["aud"]
    assert ev.by_design == (("rct", 2), ("case_report", 1))
    assert (ev.reports, ev.controlled, ev.randomized_participants, ev.randomized_without_n) == (3, 2, 40, 1)
    assert "no controlled study found" in summarize_evidence(included({"design": "case_report"}))["aud"].text()


def test_claims_file_errors_name_the_claim(tmp_path):
    path = tmp_path / "claims.yml"
    path.write_text(json.dumps({"claims": [{"id": "Z9", "section": "s", "quote": "q", "cites": "Nobody 1999",
                                            "asserts": {"design": "study"}}]}), encoding="utf-8")
    with pytest.raises(ReviewkitError, match=r"claim Z9: cites 'Nobody 1999', which matches 0 references"):
        load_claims(path, parse_lines(CITED))


def test_article_claims_resolve_and_quotes_are_short():
    claims = load_claims(ROOT / "data/article/claims.yml", read_references(ROOT / "data/article/references.txt"))
    assert len(claims) == 11 and all(len(c.quote.split()) <= 25 for c in claims)
    assert {c.reference.first_author for c in claims if c.reference} >= {"Krupitsky E", "Berman RM", "Holze F"}


def test_included_from_corpus_takes_arm_sizes_from_outcomes():
    inc = included_from_corpus(ROOT / "data/corpus/records.jsonl", ROOT / "data/corpus/outcomes.jsonl")
    dakwar_2019 = inc[(inc["pmid"] == "31230464")]
    assert list(dakwar_2019["n"]) == [55] and list(dakwar_2019["design"]) == ["rct"]
    assert set(inc["disorder"]) <= {"aud", "oud", "cocaine", "gambling"}


def test_audit_end_to_end_offline_on_the_sample(capsys):
    assert main(["audit", "--offline", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["C04"]["citation_verdict"] == "exists_with_errors"
    assert rows["C04"]["field_errors"] == ["year", "journal", "volume", "issue", "pages"]
    assert rows["C04"]["verdict"] == "unsupported" and "not an included study of alcohol use disorder" in rows["C04"]["reason"]
    assert rows["C03"]["citation_verdict"] == "not_found" and rows["C03"]["live_could_change"]
    assert rows["C08"]["verdict"] == "unsupported" and "no controlled study found" in rows["C08"]["evidence"]
    assert rows["C09"]["citation_verdict"] == "verified" and "PMID 20724638" in rows["C09"]["nearest_record"]
    assert rows["C09"]["verdict"] == "partly supported" and not rows["C09"]["live_could_change"]
    assert rows["C02"]["citation_verdict"] == "no reference cited"


def test_verify_refs_json_in_input_order_with_unparseable_lines(tmp_path, capsys):
    path = tmp_path / "refs.txt"
    lines = (ROOT / "data/article/references.txt").read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[6], "garbage line", lines[0]]), encoding="utf-8")
    assert main(["verify-refs", str(path), "--offline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["verdict"] for o in out] == ["verified", "unparseable", "exists_with_errors"]
    assert out[0]["pmid"] == "20724638" and out[2]["pmid"] == "10686270"
    assert set(out[0]) >= {"reference", "verdict", "pmid", "doi", "field_errors", "candidates"}
