"""Claims against evidence: the verdict rules, the evidence built from the screening decisions and the
meta-analysis (reviewkit.evidence), and the audit end to end offline on the bundled sample."""

import csv
import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from reviewkit.citations import LocalRecords, check_reference
from reviewkit.claims import audit_claims, load_claims, summarize_evidence
from reviewkit.cli import main
from reviewkit.errors import ReviewkitError
from reviewkit.evidence import PooledEffect, included_from_screening, load_studies, pool_analysis, pooled_effects
from reviewkit.extraction import load_extraction
from reviewkit.references import parse_lines, read_references

from helpers import EXTRACTION, PROTOCOL, ROOT, STUDIES

LABELS = PROTOCOL.labels
KEYS = tuple(PROTOCOL.searches)


def pooled_from_extraction(table, pool_group="abstinence", method="REML", included=None):
    return pooled_effects(pool_analysis(table, pool_group, method, False, disorders=KEYS, included=included),
                          label=pool_group, intervention="ketamine")

TRIAL = {"record_id": "PMID:1", "pmid": "1", "doi": None, "title": "Ketamine for drinking: a randomized trial",
         "authors": ["Smith J", "Jones K"], "journal": "Addiction", "journal_iso": None, "year": 2019,
         "volume": "10", "issue": "1", "pages": "1-10"}
CITED = "Smith, J., et al. (2019). “Ketamine for drinking: a randomized trial.” Addiction, 10(1), 1-10."


def make_claims(tmp_path, cites="Smith 2019", **asserts):
    body = {"claims": [{"id": "X1", "section": "AUD", "disorder": "aud", "quote": "Smith found it worked.",
                        "cites": cites, "asserts": {"design": "randomized controlled trial",
                                                           "significance": "significant", **asserts}}]}
    path = tmp_path / "claims.yml"
    path.write_text(json.dumps(body), encoding="utf-8")  # JSON is YAML
    return path


def run(tmp_path, included, pooled=None, reference=CITED, records=(TRIAL,), cites="Smith 2019", **asserts):
    refs = parse_lines(reference)
    claims = load_claims(make_claims(tmp_path, cites, **asserts), refs, LABELS)
    checks = {r: check_reference(r, LocalRecords(pd.DataFrame(list(records)))) for r in refs}
    return audit_claims(claims, checks, included, pooled, LABELS, "ketamine")[0]


def included(*rows):
    return pd.DataFrame([{"record_id": "PMID:1", "disorder": "aud", "design": "rct", "n": 40, "pmid": "1",
                          "doi": None, "title": TRIAL["title"], **r} for r in rows],
                        columns=["record_id", "study_id", "disorder", "design", "n", "pmid", "doi", "title"])


# Direction is harmonised (reviewkit.effects): a ratio above 1 favours ketamine.
BENEFIT = {"aud": PooledEffect("OR", 2.0, 1.2, 3.4, 3, "intervention", "abstinence", "REML", "ketamine")}
NULL = {"aud": PooledEffect("OR", 1.25, 0.48, 3.23, 2, "neither", "abstinence", "REML", "ketamine")}


def test_supported_when_the_cited_trial_is_real_and_the_pooled_effect_agrees(tmp_path):
    audit = run(tmp_path, included({}), BENEFIT)
    assert audit.verdict == "supported"
    assert "1 human study: 1 RCT" in audit.reason and "40 randomized participants" in audit.reason
    assert "pooled abstinence OR 2.00 (95% CI 1.20 to 3.40; k=3, REML): favours ketamine" in audit.reason


def test_overstated_when_significance_is_claimed_but_the_pooled_ci_includes_no_effect(tmp_path):
    audit = run(tmp_path, included({}), NULL)
    assert audit.verdict == "overstated"
    assert "claims a significant effect, but the pooled abstinence OR's CI includes 1" in audit.reason
    assert "pooled abstinence OR 1.25 (95% CI 0.48 to 3.23; k=2, REML): CI includes 1, no difference" in audit.reason


def test_a_pooled_effect_favouring_ketamine_does_not_rescue_a_claim_without_controlled_studies(tmp_path):
    audit = run(tmp_path, included({"design": "case_series"}), BENEFIT, design="study")
    assert audit.verdict == "overstated" and "claims a significant effect, but no controlled study" in audit.reason


@pytest.mark.parametrize("pooled, rows, verdict, words", [
    (BENEFIT, [{}], "supported", "favours ketamine"),
    (None, [{}], "partly supported", "controlled studies but no pooled effect in ketamine's favour"),
    (NULL, [{}], "overstated", "claims a benefit, but the pooled abstinence OR's CI includes 1"),
    (None, [{"design": "case_report"}], "overstated", "claims a benefit, but no controlled study"),
])
def test_uncited_claims_are_judged_on_the_pooled_effect(tmp_path, pooled, rows, verdict, words):
    audit = run(tmp_path, included(*rows), pooled, cites=None)
    assert audit.citation is None and audit.verdict == verdict and words in audit.reason


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
    assert audit.reason.startswith("cited Smith 2019 not found in the local records")


def test_no_evidence_when_the_disorder_has_no_human_study(tmp_path):
    audit = run(tmp_path, included({"disorder": "oud"}))
    assert audit.verdict == "no evidence" and "no human study of ketamine for alcohol use disorder" in audit.reason


def test_evidence_counts_studies_by_design_and_randomized_participants():
    ev = summarize_evidence(included({}, {"record_id": "PMID:2", "pmid": "2", "n": None},
                                      {"record_id": "PMID:3", "pmid": "3", "design": "case_report", "n": 1}),
                            None, LABELS)["aud"]
    assert ev.by_design == (("rct", 2), ("case_report", 1))
    assert (ev.studies, ev.reports, ev.controlled, ev.randomized_participants, ev.randomized_without_n) == \
        (3, 3, 2, 40, 1)
    assert "no controlled study found" in summarize_evidence(included({"design": "case_report"}), None, LABELS)["aud"].text()


def test_a_study_reported_twice_counts_once_with_its_main_reports_design():
    # PMID:2 re-analyses PMID:1's participants (its study_id points there) and has its own design label.
    rows = included({"study_id": "PMID:1", "n": 40},
                    {"record_id": "PMID:2", "study_id": "PMID:1", "pmid": "2", "design": "crossover_rct", "n": 40},
                    {"record_id": "PMID:3", "study_id": "PMID:3", "pmid": "3", "n": 20})
    ev = summarize_evidence(rows, None, LABELS)["aud"]
    assert (ev.studies, ev.reports, ev.randomized_participants, ev.randomized_without_n) == (2, 3, 60, 0)
    assert ev.by_design == (("rct", 2),)
    assert ev.text().startswith("2 human studies (3 reports): 2 RCT; 60 randomized participants")


def test_claims_file_errors_name_the_claim(tmp_path):
    path = tmp_path / "claims.yml"
    path.write_text(json.dumps({"claims": [{"id": "Z9", "section": "s", "quote": "q", "cites": "Nobody 1999",
                                            "asserts": {"design": "study"}}]}), encoding="utf-8")
    with pytest.raises(ReviewkitError, match=r"claim Z9: cites 'Nobody 1999', which matches 0 references"):
        load_claims(path, parse_lines(CITED), LABELS)


def test_a_claims_disorders_and_their_names_are_the_protocols_searches(tmp_path):
    from reviewkit.text import in_sentence

    path = make_claims(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace('"aud"', '"cannabis"'), encoding="utf-8")
    with pytest.raises(ReviewkitError, match=r"claim X1: unknown disorder 'cannabis' \(the protocol's searches: "
                                             r"aud, oud, cocaine, gambling\)"):
        load_claims(path, parse_lines(CITED), LABELS)
    labels = {"cannabis": "Cannabis use disorder"}
    claims = load_claims(path, parse_lines(CITED), labels)
    audit = audit_claims(claims, {}, included(), None, labels, "ketamine")[0]
    assert audit.verdict == "no evidence"
    assert "no human study of ketamine for cannabis use disorder in this review's evidence" in audit.reason
    assert [in_sentence(x) for x in ("Alcohol use disorder", "HIV-related drug use", "A")] == \
        ["alcohol use disorder", "HIV-related drug use", "a"]


def test_article_claims_resolve_and_quotes_are_short():
    claims = load_claims(ROOT / "data/article/claims.yml", read_references(ROOT / "data/article/references.txt"), LABELS)
    assert len(claims) == 11 and all(len(c.quote.split()) <= 25 for c in claims)
    assert {c.reference.first_author for c in claims if c.reference} >= {"Krupitsky E", "Berman RM", "Holze F"}


def _or_and_variance(a, n1, c, n2):
    """log OR of a 2x2 table and its variance (Woolf), by hand."""
    return math.log(a * (n2 - c) / ((n1 - a) * c)), 1 / a + 1 / (n1 - a) + 1 / c + 1 / (n2 - c)


def test_pooled_from_extraction_on_the_sample_equals_a_hand_computation():
    pooled = pooled_from_extraction(load_extraction(EXTRACTION, PROTOCOL), "abstinence", "REML")
    assert set(pooled) == {"aud", "cocaine"}  # no OUD or gambling row enters the abstinence analysis
    # AUD: Dakwar 2020 (14/17 vs 15/23) and Grabski 2022 (relapse OR 0.80, 0.31 to 2.10, inverted to no relapse).
    y1, v1 = _or_and_variance(14, 17, 15, 23)
    y2, v2 = -math.log(0.80), ((math.log(2.10) - math.log(0.31)) / (2 * 1.959964)) ** 2
    y, v = [y1, y2], [v1, v2]
    w = [1 / x for x in v]
    mu = sum(wi * yi for wi, yi in zip(w, y)) / sum(w)
    # The REML score at tau^2 = 0 is <= 0 here, so tau^2 = 0 and REML is the inverse-variance common effect.
    assert sum(wi**2 * (yi - mu) ** 2 for wi, yi in zip(w, y)) - (sum(w) - sum(wi**2 for wi in w) / sum(w)) <= 0
    se = math.sqrt(1 / sum(w))
    aud = pooled["aud"]
    assert (aud.measure, aud.k, aud.analysis, aud.method) == ("OR", 2, "abstinence", "REML")
    assert aud.estimate == pytest.approx(math.exp(mu))
    assert (aud.ci_low, aud.ci_high) == pytest.approx((math.exp(mu - 1.959964 * se), math.exp(mu + 1.959964 * se)),
                                                      rel=1e-6)
    assert aud.favours == "neither" and aud.ci_low < 1 < aud.ci_high
    assert f"{aud.estimate:.2f} {aud.ci_low:.2f} {aud.ci_high:.2f}" == "1.52 0.68 3.42"  # docs/meta-analysis.md
    # Cocaine: Dakwar 2019 alone (13/27 vs 3/28), the study's own z-based CI.
    y, v = _or_and_variance(13, 27, 3, 28)
    cocaine = pooled["cocaine"]
    assert cocaine.k == 1 and cocaine.favours == "intervention"
    assert (cocaine.estimate, cocaine.ci_low, cocaine.ci_high) == pytest.approx(
        (math.exp(y), math.exp(y - 1.959964 * math.sqrt(v)), math.exp(y + 1.959964 * math.sqrt(v))), rel=1e-6)


def test_pooled_effects_are_harmonised_so_that_above_one_favours_ketamine():
    table = load_extraction(EXTRACTION, PROTOCOL)
    # A relapse OR of 0.5 (0.3 to 0.5^2/0.3, symmetric on the log scale): fewer relapses on ketamine,
    # i.e. a no-relapse OR of 2.0 (1.2 to 3.33).
    rows = table[table["row_id"] == "grabski2022-relapse"].assign(estimate=0.5, ci_low=0.3, ci_high=0.25 / 0.3)
    aud = pooled_from_extraction(rows)["aud"]
    assert (aud.estimate, aud.ci_low, aud.ci_high) == pytest.approx((2.0, 1.2, 1 / 0.3), rel=1e-5)
    assert aud.favours == "intervention" and aud.text().endswith("favours ketamine")
    worse = pooled_from_extraction(rows.assign(estimate=2.0, ci_low=1.2, ci_high=4 / 1.2))["aud"]
    assert worse.favours == "control" and worse.estimate == pytest.approx(0.5)


def _screening(reports, records):
    """A stand-in for ScreeningState: the full-text sheet and the deduplicated records."""
    sheet = pd.DataFrame([{"status": "", "final": "include", "study_id": "", **r} for r in reports])
    return SimpleNamespace(sheet=lambda stage: sheet, dedupe=SimpleNamespace(records=pd.DataFrame(records)),
                           search_keys=("aud", "oud", "cocaine", "gambling"))


def _record(**fields):
    return {"record_id": "CIT:x", "pmid": None, "doi": None, "title": "A trial", "first_author": "Doe JA",
            "year": 2001, "journal": "Journal of Tests", "searches": ["oud"], **fields}


def test_included_from_screening_joins_design_by_study_and_n_by_author_year_journal(tmp_path):
    studies = pd.DataFrame([{"study_id": "CIT:x", "study": "Doe 2001", "design": "rct", "source": "test"}])
    extraction = load_extraction(EXTRACTION, PROTOCOL).head(1).assign(
        study="Doe 2001", pmid=None, doi=None, journal="Journal of tests", n_t=12, n_c=10, row_id="doe-1")
    state = _screening([{"record_id": "CIT:x"}, {"record_id": "CIT:y", "final": "exclude"},
                        {"record_id": "CIT:z", "study_id": "CIT:x"}],
                       [_record(), _record(record_id="CIT:y", title="Other"),
                        _record(record_id="CIT:z", title="A later report", year=2004)])
    rows = included_from_screening(state, studies, extraction).set_index("record_id")
    assert list(rows.index) == ["CIT:x", "CIT:z"]
    row = rows.loc["CIT:x"]
    assert (row["study_id"], row["disorder"], row["design"], row["n"]) == ("CIT:x", "oud", "rct", 22)
    assert row["design_from"] == "studies table, CIT:x" and row["n_from"] == "extraction by author-year-journal: doe-1"
    # A second report of the study takes the study's design; a study without a row in the table has none.
    assert rows.loc["CIT:z", "design"] == "rct" and rows.loc["CIT:z", "study_id"] == "CIT:x"
    assert included_from_screening(state, studies.iloc[0:0], extraction)["design"].isna().all()


def test_the_studies_table_is_checked(tmp_path):
    path = tmp_path / "studies.csv"
    path.write_text("study_id,study,design,source\nPMID:1,Doe 2001,rct,x\nPMID:1,Doe 2001,rct,x\n", encoding="utf-8")
    with pytest.raises(ReviewkitError, match="study_id 'PMID:1' appears more than once"):
        load_studies(path)
    path.write_text("study_id,study,design,source\nPMID:1,Doe 2001,trial,x\n", encoding="utf-8")
    with pytest.raises(ReviewkitError, match=r"studies.csv, row 2, column 'design': 'trial' is not one of rct"):
        load_studies(path)
    assert load_studies(tmp_path / "absent.csv").empty


def _sheet_rows():
    with open(ROOT / "data/screening/sample/full_text.csv", encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["status"] == "" and r["final"] == "include"]


def test_included_from_screening_on_the_sample_counts_each_study_once():
    from reviewkit.screening_state import build_state

    state = build_state(ROOT / "data/snapshots/sample", ROOT / "data/screening/sample", PROTOCOL)
    inc = included_from_screening(state, load_studies(STUDIES), load_extraction(EXTRACTION, PROTOCOL))
    sheet = _sheet_rows()
    assert set(inc["record_id"]) == {r["record_id"] for r in sheet}
    assert inc["study_id"].nunique() == len({r["study_id"] or r["record_id"] for r in sheet})
    dakwar_2020 = "CIT:doi:10.1176/appi.ajp.2019.19070684"
    rothberg = inc[inc["pmid"] == "33307947"].iloc[0]
    assert rothberg["study_id"] == dakwar_2020 and pd.isna(rothberg["n"])
    # n: the largest two-arm total in the extraction table (17 + 23; 48 + 48; 26 + 27 found by author, year, journal).
    n = dict(zip(inc["record_id"], inc["n"]))
    assert (n[dakwar_2020], n["CIT:doi:10.1176/appi.ajp.2021.21030277"], n["CIT:corpus-line-101"]) == (40, 96, 53)
    assert inc["design"].notna().all() and inc["design_from"].notna().all()
    aud = summarize_evidence(inc, None, LABELS)["aud"]
    aud_sheet = [r for r in sheet if "aud" in r["searches"].split("; ")]
    assert aud.reports == len(aud_sheet) and aud.studies == len({r["study_id"] or r["record_id"] for r in aud_sheet})
    assert aud.randomized_participants == 40 + 96  # Rothberg 2021 adds no one


def test_only_rows_of_included_studies_are_pooled():
    from reviewkit.evidence import included_rows
    from reviewkit.screening_state import build_state

    def analysis(table, group="abstinence", included=None):
        return pool_analysis(table, group, "REML", False, disorders=KEYS, included=included)

    table = load_extraction(EXTRACTION, PROTOCOL)
    state = build_state(ROOT / "data/snapshots/sample", ROOT / "data/screening/sample", PROTOCOL)
    inc = included_from_screening(state, load_studies(STUDIES), table)
    # On the sample every extraction row belongs to an included report, so nothing changes.
    assert set(included_rows(table, inc)["row_id"]) == set(table["row_id"])
    assert analysis(table, included=inc) == analysis(table)
    # Exclude Dakwar 2019 (the only cocaine study in the abstinence analysis) at full text.
    without = inc[inc["pmid"] != "31230464"]
    model = analysis(table, included=without)
    assert model.subgroups["cocaine"] is None and model.subgroups["aud"].k == 2 and model.overall.k == 2
    assert set(pooled_from_extraction(table, included=without)) == {"aud"}
    # No included study in the analysis: nothing pooled, but a mistyped analysis is still an error.
    assert analysis(table, included=inc.iloc[0:0]) is None
    assert pooled_from_extraction(table, included=inc.iloc[0:0]) == {}
    with pytest.raises(ReviewkitError, match="no rows in pool_group 'abstinance'"):
        analysis(table, "abstinance", included=inc)


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
    assert rows["C03"]["reason"].startswith("cited Krupitsky 2011 not found in the local records of the bundled "
                                            "sample (a curated sample, not all of PubMed)")
    # The evidence is the screening's included studies and the pooled abstinence analysis.
    assert rows["C02"]["verdict"] == "overstated"
    assert "claims a benefit, but the pooled abstinence OR's CI includes 1" in rows["C02"]["reason"]
    assert "pooled abstinence OR 1.52 (95% CI 0.68 to 3.42; k=2, REML)" in rows["C02"]["reason"]
    assert rows["C03"]["evidence"].startswith("9 human studies (10 reports): 5 RCT")
    assert "pooled abstinence OR 7.74 (95% CI 1.88 to 31.87; k=1, REML): favours ketamine" in rows["C07"]["evidence"]
    assert "no pooled effect computed" in rows["C05"]["evidence"]


def test_audit_without_included_studies_is_an_error_naming_the_screening_folder(tmp_path, capsys):
    assert main(["audit", "--offline", "--json", "--screening", str(tmp_path)]) == 2
    assert f"{tmp_path}: no report has a full-text decision of include" in capsys.readouterr().err


def test_verify_refs_json_in_input_order_with_unparseable_lines(tmp_path, capsys):
    path = tmp_path / "refs.txt"
    lines = (ROOT / "data/article/references.txt").read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[6], "garbage line", lines[0]]), encoding="utf-8")
    assert main(["verify-refs", str(path), "--offline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["verdict"] for o in out] == ["verified", "unparseable", "exists_with_errors"]
    assert out[0]["pmid"] == "20724638" and out[2]["pmid"] == "10686270"
    assert set(out[0]) >= {"reference", "verdict", "pmid", "doi", "field_errors", "candidates"}


def _served(frame: pd.DataFrame) -> list[dict]:
    """Records-table rows as the emulator's record dicts (missing fields left out)."""
    return [{k: v for k, v in row.items() if isinstance(v, list) or not pd.isna(v)} for row in frame.to_dict("records")]


@pytest.mark.slow
def test_audit_live_end_to_end_through_the_emulator(tmp_path, monkeypatch, capsys):
    """`search --live` then `audit --live` against the loopback E-utilities emulator serving the sample's own
    PubMed records: the citation checks ask PubMed (ECitMatch, ESearch by author and by title words, EFetch),
    the answers are recorded in the snapshot, and an offline audit of that snapshot replays the same verdicts."""
    import shutil

    from reviewkit.records import load_lookup_records, load_records
    from reviewkit.testing.emulator import Emulator

    sample, protocol = ROOT / "data/snapshots/sample", PROTOCOL
    served = _served(load_records(sample)) + _served(load_lookup_records(sample))
    snapshot, screening = tmp_path / "live", tmp_path / "screening"
    shutil.copytree(ROOT / "data/screening/sample", screening)
    monkeypatch.setenv("NCBI_EMAIL", "audit-test@example.org")
    with Emulator(served, aliases={protocol.query(k): k for k in protocol.searches}) as emu:
        monkeypatch.setenv("REVIEWKIT_EUTILS_URL", emu.base_url)
        assert main(["search", "--live", "--snapshot", str(snapshot)]) == 0
        capsys.readouterr()
        emu.log.clear()
        assert main(["audit", "--live", "--snapshot", str(snapshot), "--screening", str(screening), "--json"]) == 0
        asked = {e.utility for e in emu.log}
    live = json.loads(capsys.readouterr().out)
    assert {"ecitmatch", "esearch", "efetch"} <= asked
    rows = {r["id"]: r for r in live}
    # Berman 2000 is found by its title words despite the wrong year, journal and volume.
    assert rows["C04"]["citation_verdict"] == "exists_with_errors" and "PMID 10686270" in rows["C04"]["nearest_record"]
    assert rows["C04"]["field_errors"] == ["year", "journal", "volume", "issue", "pages"]
    assert rows["C09"]["citation_verdict"] == "verified" and "PMID 20724638" in rows["C09"]["nearest_record"]
    assert rows["C03"]["citation_verdict"] == "not_found"
    assert not any(r["live_could_change"] for r in live)  # PubMed itself was asked
    assert (snapshot / "lookups" / "manifest.json").is_file()

    assert rows["C03"]["reason"].startswith("cited Krupitsky 2011 not found in PubMed")
    # The live snapshot has no other-methods records, so the AUD trials of the abstinence analysis
    # (Dakwar 2020, Grabski 2022) are not included and not pooled; Dakwar 2019 (cocaine, a PubMed record) is.
    assert "no pooled effect computed" in rows["C02"]["evidence"]
    assert "pooled abstinence OR 7.74 (95% CI 1.88 to 31.87; k=1, REML)" in rows["C07"]["evidence"]

    # Offline, from what the live audit recorded (no request can reach PubMed): the same verdicts and the same
    # records identified; the reasons now say the snapshot's local records were searched, not PubMed.
    monkeypatch.setenv("REVIEWKIT_EUTILS_URL", "http://127.0.0.1:9/entrez/eutils/")
    assert main(["audit", "--offline", "--snapshot", str(snapshot), "--screening", str(screening), "--json"]) == 0
    replay = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    same = ("citation_verdict", "field_errors", "evidence", "verdict")
    assert {i: [r[k] for k in same] for i, r in replay.items()} == {i: [r[k] for k in same] for i, r in rows.items()}
    for claim_id, row in rows.items():
        if row["citation_verdict"] in ("verified", "exists_with_errors"):
            assert replay[claim_id]["nearest_record"] == row["nearest_record"], claim_id
    assert replay["C03"]["reason"].startswith("cited Krupitsky 2011 not found in the local records of snapshot live")
