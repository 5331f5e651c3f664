"""Claims against evidence: two verdicts (the citation, the statement), the rules of each, the claims file,
the included studies, and the audit end to end on the bundled sample."""

import csv
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from reviewkit.audit import labels_of
from reviewkit.citations import LocalRecords, check_reference
from reviewkit.claims import audit_claims, judge_statement, load_claims, overall_certainty, studies_text
from reviewkit.cli import main
from reviewkit.errors import ReviewkitError
from reviewkit.evidence import included_from_screening, load_studies
from reviewkit.grade import Certainty
from reviewkit.references import parse_lines, read_references

from helpers import PROTOCOL, ROOT, STUDIES
from helpers import made_up_synthesis as synthesis

LABELS = labels_of(PROTOCOL)
TRIAL = {"record_id": "PMID:1", "pmid": "1", "doi": None, "title": "Ketamine for drinking: a randomized trial",
         "authors": ["Smith J", "Jones K"], "journal": "Addiction", "journal_iso": None, "year": 2019,
         "volume": "10", "issue": "1", "pages": "1-10"}
CITED = "Smith, J., et al. (2019). “Ketamine for drinking: a randomized trial.” Addiction, 10(1), 1-10."


def claim_item(**fields):
    asserts = {"design": "randomized controlled trial", "significance": "not stated", "strength": "modest",
               **fields.pop("asserts", {})}
    return {"id": "X1", "section": "AUD", "kind": "effect", "disorders": ["aud"], "outcome_domains": ["abstinence"],
            "comparison": "control", "quote": "Smith found it worked.", "cites": "Smith 2019", "asserts": asserts,
            **fields}


def write_claims(tmp_path, *items):
    path = tmp_path / "claims.yml"
    path.write_text(json.dumps({"claims": list(items) or [claim_item()]}), encoding="utf-8")  # JSON is YAML
    return path


def claims(tmp_path, **fields):
    return load_claims(write_claims(tmp_path, claim_item(**fields)), parse_lines(CITED), PROTOCOL)


def certain(level):
    return Certainty("high", level, ())


def verdict(tmp_path, found, **fields):
    return judge_statement(claims(tmp_path, **fields)[0], found, LABELS)


BENEFIT = synthesis([0.7, 0.9], [0.05, 0.05], certainty=certain("moderate"))
NULL = synthesis([0.1, -0.1], [0.2, 0.2], certainty=certain("low"))
HARM = synthesis([-0.8, -0.9], [0.05, 0.05], certainty=certain("moderate"))


def test_supported_when_every_matching_synthesis_shows_a_benefit(tmp_path):
    got = verdict(tmp_path, [BENEFIT])
    assert got[0] == "supported" and got[1] == "moderate"
    assert got[2].startswith("alcohol use disorder, abstinence, ketamine vs control: OR 2.23")


@pytest.mark.parametrize("found, expected", [
    ([NULL], "not supported"),
    ([HARM], "contradicted"),
    ([HARM, NULL], "contradicted"),
    ([BENEFIT, NULL], "partly supported"),
])
def test_statement_rules(tmp_path, found, expected):
    assert verdict(tmp_path, found)[0] == expected


def test_a_strong_claim_on_low_certainty_evidence_is_only_partly_supported(tmp_path):
    weak = synthesis([0.7, 0.9], [0.05, 0.05], certainty=certain("low"))
    got = verdict(tmp_path, [weak], asserts={"strength": "strong"})
    assert got[:2] == ("partly supported", "low") and "cannot bear a claim worded this strongly" in got[2]
    assert verdict(tmp_path, [weak])[0] == "supported"  # the same evidence bears a modest claim


def test_directions_without_estimates_never_fully_support(tmp_path):
    words = synthesis([], [], narrative=[("Doe 2001", "favours intervention")], certainty=certain("very low"))
    got = verdict(tmp_path, [words])
    assert got[0] == "partly supported" and "give no effect estimate" in got[2]
    mixed = synthesis([], [], narrative=[("Doe 2001", "favours intervention"), ("Roe 2002", "no difference")])
    assert verdict(tmp_path, [mixed])[0] == "not supported"


def test_other_outcomes_and_comparisons_never_count(tmp_path):
    craving = synthesis([0.7, 0.9], [0.05, 0.05], domain="craving", certainty=certain("high"))
    dose = synthesis([0.7, 0.9], [0.05, 0.05], comparison="dose", certainty=certain("high"))
    other_disorder = synthesis([0.7, 0.9], [0.05, 0.05], disorder="oud", certainty=certain("high"))
    got = verdict(tmp_path, [craving, dose, other_disorder])
    assert got[:2] == ("no eligible evidence", None)
    assert got[2].startswith("no included study reports abstinence in alcohol use disorder, ketamine vs control")
    assert "evidence only on: abstinence (more vs less ketamine" in got[2] and "craving (ketamine vs control)" in got[2]


def test_a_claim_about_outcomes_the_evidence_lacks_says_so(tmp_path):
    got = verdict(tmp_path, [BENEFIT], outcome_domains=["abstinence", "craving"])
    assert got[0] == "partly supported" and got[2].endswith("no included study reports craving for this comparison")


def test_a_claim_about_several_disorders_names_those_without_evidence(tmp_path):
    got = verdict(tmp_path, [BENEFIT], disorders=["aud", "gambling"])
    assert got[0] == "partly supported"
    assert got[2].endswith("no included study reports these outcomes in gambling disorder")


def test_results_that_all_show_no_difference_take_the_highest_certainty(tmp_path):
    null_high = synthesis([0.05, -0.05], [0.01, 0.01], domain="relapse", certainty=certain("moderate"))
    got = verdict(tmp_path, [NULL, null_high], outcome_domains=["abstinence", "relapse"])
    assert got[:2] == ("not supported", "moderate")
    assert verdict(tmp_path, [NULL, HARM.__class__(**{**HARM.__dict__, "outcome_domain": "relapse"})],
                   outcome_domains=["abstinence", "relapse"])[1] == "low"  # mixed: the lowest


def test_mechanism_claims_are_outside_the_question(tmp_path):
    got = verdict(tmp_path, [BENEFIT], kind="mechanism", disorders=[], outcome_domains=[], comparison=None)
    assert got[:2] == ("no eligible evidence", None) and "mechanism" in got[2]


def test_overall_certainty_follows_grade_across_outcomes():
    hi, lo = certain("moderate"), certain("very low")
    items = [synthesis([0.5], [0.1], certainty=hi), synthesis([0.5], [0.1], certainty=lo)]
    assert overall_certainty(items, same_direction=True) == "moderate"
    assert overall_certainty(items, same_direction=False) == "very low"
    assert overall_certainty([synthesis([0.5], [0.1])], same_direction=True) is None


def included(*rows):
    return pd.DataFrame([{"record_id": "PMID:1", "study_id": "PMID:1", "disorder": "aud", "design": "rct", "n": 40,
                          "pmid": "1", "doi": None, "title": TRIAL["title"], **r} for r in rows])


def audit(tmp_path, inc, found=(BENEFIT,), reference=CITED, records=(TRIAL,), **fields):
    refs = parse_lines(reference)
    loaded = load_claims(write_claims(tmp_path, claim_item(**fields)), refs, PROTOCOL)
    checks = {r: check_reference(r, LocalRecords(pd.DataFrame(list(records)))) for r in refs}
    return audit_claims(loaded, checks, inc, list(found), LABELS, "ketamine")[0]


def test_the_two_verdicts_are_judged_apart(tmp_path):
    fabricated = audit(tmp_path, included({}), records=({**TRIAL, "title": "Rats and alcohol", "authors": ["Doe A"]},))
    assert fabricated.citation.verdict == "not_found" and fabricated.citation_about_claim == "not assessable"
    assert fabricated.statement_verdict == "supported"  # a fabricated citation does not make the statement false
    real = audit(tmp_path, included({}), found=[NULL])
    assert real.citation.verdict == "verified" and real.citation_about_claim == "yes"
    assert real.statement_verdict == "not supported"  # nor does a real one make it true


def test_citation_is_about_the_claim_only_when_it_is_an_included_study_of_its_disorder(tmp_path):
    ok = audit(tmp_path, included({}))
    assert ok.citation_reason.endswith("an included RCT of alcohol use disorder")
    series = audit(tmp_path, included({"design": "case_series"}))
    assert series.citation_about_claim == "yes" and "but not the RCT the claim says" in series.citation_reason
    elsewhere = audit(tmp_path, included({"disorder": "oud"}))
    assert elsewhere.citation_about_claim == "no"
    assert "not an included study of ketamine for alcohol use disorder" in elsewhere.citation_reason
    errors = audit(tmp_path, included({}), reference=CITED.replace("10(1)", "11(1)"))
    assert errors.citation.verdict == "exists_with_errors" and "with errors in volume" in errors.citation_reason
    uncited = audit(tmp_path, included({}), cites=None)
    assert uncited.citation is None and uncited.as_dict()["citation_verdict"] == "no reference cited"


def test_studies_are_counted_once_with_randomized_participants():
    rows = included({}, {"record_id": "PMID:2", "pmid": "2"},  # a second report of study PMID:1
                    {"record_id": "PMID:3", "study_id": "PMID:3", "pmid": "3", "n": None},
                    {"record_id": "PMID:4", "study_id": "PMID:4", "pmid": "4", "design": "case_report", "n": 1})
    assert studies_text(rows, "aud") == ("3 included studies (4 reports): 2 RCT, 1 case report; 40 randomized "
                                         "participants (1 randomized study without a reported n)")
    assert studies_text(rows, "gambling") == "no included study"


@pytest.mark.parametrize("change, message", [
    ({"cites": "Nobody 1999"}, r"claim X1: cites 'Nobody 1999', which matches 0 references"),
    ({"disorders": ["cannabis"]}, r"claim X1: unknown disorders cannabis \(the protocol's searches: aud, oud"),
    ({"outcome_domains": ["mood"]}, r"claim X1: unknown outcome_domains mood \(the protocol's outcomes: abstinence"),
    ({"comparison": "sham"}, r"claim X1: comparison 'sham' is not one of control, dose, single_arm"),
    ({"comparison": None}, r"claim X1: an effect claim needs disorders, outcome_domains and a comparison"),
    ({"kind": "hope"}, r"claim X1: kind must be one of effect, mechanism"),
    ({"quote": "word " * 26}, r"claim X1: quote has 26 words \(at most 25\)"),
    ({"asserts": {"12-week follow-up": None}}, r"claim X1: unknown asserts 12-week follow-up"),
    ({"asserts": {"strength": "huge"}}, r"claim X1: asserts.strength must be one of strong, modest"),
])
def test_claims_file_errors_name_the_claim(tmp_path, change, message):
    with pytest.raises(ReviewkitError, match=message):
        claims(tmp_path, **change)


def test_article_claims_resolve_and_quotes_are_short():
    loaded = load_claims(ROOT / "data/article/claims.yml", read_references(ROOT / "data/article/references.txt"),
                         PROTOCOL)
    assert len(loaded) == 11 and all(len(c.quote.split()) <= 25 for c in loaded)
    assert {c.reference.first_author for c in loaded if c.reference} >= {"Krupitsky E", "Berman RM", "Holze F"}
    assert {c.id for c in loaded if c.kind == "mechanism"} == {"C01", "C09", "C10"}


def _screening(reports, records):
    """A stand-in for ScreeningState: the full-text sheet and the deduplicated records."""
    sheet = pd.DataFrame([{"status": "", "final": "include", "study_id": "", **r} for r in reports])
    return SimpleNamespace(sheet=lambda stage: sheet, dedupe=SimpleNamespace(records=pd.DataFrame(records)),
                           search_keys=("aud", "oud", "cocaine", "gambling"))


def _record(**fields):
    return {"record_id": "CIT:x", "pmid": None, "doi": None, "title": "A trial", "first_author": "Doe JA",
            "year": 2001, "journal": "Journal of Tests", "searches": ["oud"], **fields}


def test_included_from_screening_takes_design_and_size_from_the_studies_table():
    studies = pd.DataFrame([{"study_id": "CIT:x", "study": "Doe 2001", "design": "rct", "n_randomized": 22,
                             "n_enrolled": None, "n_analysed": 20, "population": "p", "source": "test"}])
    state = _screening([{"record_id": "CIT:x"}, {"record_id": "CIT:y", "final": "exclude"},
                        {"record_id": "CIT:z", "study_id": "CIT:x"}],
                       [_record(), _record(record_id="CIT:y", title="Other"),
                        _record(record_id="CIT:z", title="A later report", year=2004)])
    rows = included_from_screening(state, studies).set_index("record_id")
    assert list(rows.index) == ["CIT:x", "CIT:z"]
    row = rows.loc["CIT:x"]
    assert (row["study_id"], row["disorder"], row["design"], row["n"]) == ("CIT:x", "oud", "rct", 22)
    assert row["design_from"] == "studies table, CIT:x"
    assert rows.loc["CIT:z", "design"] == "rct" and rows.loc["CIT:z", "study_id"] == "CIT:x"
    assert included_from_screening(state, studies.iloc[0:0])["design"].isna().all()  # never guessed


def test_the_studies_table_is_checked(tmp_path):
    path = tmp_path / "studies.csv"
    head = "study_id,study,design,n_randomized,n_enrolled,n_analysed,population,source\n"
    path.write_text(head + "PMID:1,Doe 2001,rct,,,,p,x\nPMID:1,Doe 2001,rct,,,,p,x\n", encoding="utf-8")
    with pytest.raises(ReviewkitError, match="study_id 'PMID:1' appears more than once"):
        load_studies(path)
    path.write_text(head + "PMID:1,Doe 2001,trial,,,,p,x\n", encoding="utf-8")
    with pytest.raises(ReviewkitError, match=r"studies.csv, row 2, column 'design': 'trial' is not one of rct"):
        load_studies(path)
    path.write_text(head + "PMID:1,Doe 2001,rct,forty,,,p,x\n", encoding="utf-8")
    with pytest.raises(ReviewkitError, match=r"column 'n_randomized': 'forty' is not a whole number"):
        load_studies(path)
    assert load_studies(tmp_path / "absent.csv").empty


def test_included_from_screening_on_the_sample_counts_each_study_once():
    from reviewkit.screening_state import build_state

    state = build_state(ROOT / "data/snapshots/sample", ROOT / "data/screening/sample", PROTOCOL)
    inc = included_from_screening(state, load_studies(STUDIES))
    with open(ROOT / "data/screening/sample/full_text.csv", encoding="utf-8", newline="") as f:
        sheet = [r for r in csv.DictReader(f) if r["status"] == "" and r["final"] == "include"]
    assert set(inc["record_id"]) == {r["record_id"] for r in sheet}
    assert inc["study_id"].nunique() == len({r["study_id"] or r["record_id"] for r in sheet}) == 17
    assert inc["design"].notna().all()
    rothberg = inc[inc["pmid"] == "33307947"].iloc[0]
    assert rothberg["study_id"] == "CIT:doi:10.1176/appi.ajp.2019.19070684"  # Dakwar 2020's participants
    assert "PMID:31772157" not in set(inc["record_id"])  # Das 2019: excluded per ERRATA.md


def test_audit_end_to_end_offline_on_the_sample(capsys):
    assert main(["audit", "--offline", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 11
    for row in rows.values():
        assert set(row) >= {"id", "disorders", "outcome_domains", "citation_verdict", "statement_verdict",
                            "certainty", "reason", "evidence"}
        assert row["certainty"] in {"high", "moderate", "low", "very low", None}
        for s in row["evidence"]:
            assert set(s) >= {"disorder", "outcome_domain", "comparison", "k", "participants", "measure", "estimate",
                              "ci_low", "ci_high", "pi_low", "pi_high", "certainty", "downgrades"}
            assert s["disorder"] in row["disorders"] and s["outcome_domain"] in row["outcome_domains"]
    # Mechanism claims are outside the question; gambling has no included study.
    assert all(rows[i]["statement_verdict"] == "no eligible evidence" for i in ("C01", "C09", "C10", "C08"))
    assert rows["C08"]["evidence"] == [] and "no included study" in rows["C08"]["studies"]
    # OUD (C05: craving and withdrawal vs control): only Jovaisa's withdrawal comparison matches; the dose
    # comparison is not the claim's, and craving vs control has no evidence, which the reason says.
    c05 = rows["C05"]
    assert [(s["outcome_domain"], s["comparison"], s["studies"]) for s in c05["evidence"]] == \
        [("withdrawal", "control", ["Jovaisa 2006"])]
    assert c05["statement_verdict"] == "partly supported"
    assert "no included study reports craving for this comparison" in c05["reason"]
    # C07 (cocaine): a citation not found, a statement the evidence supports.
    assert rows["C07"]["citation_verdict"] == "not_found" and rows["C07"]["statement_verdict"] == "supported"
    assert rows["C07"]["certainty"] == "low"
    assert rows["C04"]["citation_verdict"] == "exists_with_errors" and rows["C04"]["citation_about_claim"] == "no"
    assert rows["C04"]["field_errors"] == ["year", "journal", "volume", "issue", "pages"]
    assert rows["C09"]["citation_verdict"] == "verified" and "PMID 20724638" in rows["C09"]["nearest_record"]
    assert rows["C02"]["citation_verdict"] == "no reference cited"
    assert rows["C03"]["citation_reason"].startswith("cited Krupitsky 2011 not found in the local records of the "
                                                     "bundled sample (a curated sample, not all of PubMed)")


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

    sample = ROOT / "data/snapshots/sample"
    served = _served(load_records(sample)) + _served(load_lookup_records(sample))
    snapshot, screening = tmp_path / "live", tmp_path / "screening"
    shutil.copytree(ROOT / "data/screening/sample", screening)
    monkeypatch.setenv("NCBI_EMAIL", "audit-test@example.org")
    with Emulator(served, aliases={PROTOCOL.query(k): k for k in PROTOCOL.searches}) as emu:
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
    assert rows["C03"]["citation_reason"].startswith("cited Krupitsky 2011 not found in PubMed")
    # The live snapshot has no other-methods records, so only PubMed-indexed trials are included:
    # Dakwar 2019 (cocaine, PMID 31230464) is, and C07 is judged on it.
    assert [s["studies"] for s in rows["C07"]["evidence"] if s["outcome_domain"] == "abstinence"] == \
        [["Dakwar 2019"]]

    # Offline, from what the live audit recorded (no request can reach PubMed): the same verdicts and the same
    # records identified; the reasons now say the snapshot's local records were searched, not PubMed.
    monkeypatch.setenv("REVIEWKIT_EUTILS_URL", "http://127.0.0.1:9/entrez/eutils/")
    assert main(["audit", "--offline", "--snapshot", str(snapshot), "--screening", str(screening), "--json"]) == 0
    replay = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    same = ("citation_verdict", "field_errors", "evidence", "statement_verdict", "certainty")
    assert {i: [r[k] for k in same] for i, r in replay.items()} == {i: [r[k] for k in same] for i, r in rows.items()}
    for claim_id, row in rows.items():
        if row["citation_verdict"] in ("verified", "exists_with_errors"):
            assert replay[claim_id]["nearest_record"] == row["nearest_record"], claim_id
    assert replay["C03"]["citation_reason"].startswith("cited Krupitsky 2011 not found in the local records of "
                                                       "snapshot live")
