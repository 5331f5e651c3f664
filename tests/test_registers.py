"""Registrations end to end: `search --live` records a register search beside the PubMed one, the
registrations enter the records table, one linking a PubMed record's PMID is merged into it, the rest go
to screening, PRISMA 2020 counts them in its registers line, and Cochrane's lists name the ongoing and
unclassified ones. Synthetic registrations and records (NCT9..., PMID 96...: ranges never issued)."""

from __future__ import annotations

import json

import pandas as pd

from reviewkit.cli import main
from reviewkit.ctgov import cochrane_listing, study_row
from reviewkit.dedupe import deduplicate
from reviewkit.flow_diagram import identified_lines
from reviewkit.testing.ctgov_emulator import CtgovEmulator, synthetic_studies
from reviewkit.testing.emulator import Emulator, synthetic_records

from helpers import PROTOCOL, ROOT


def test_a_registration_is_merged_into_the_publication_it_links():
    # NCT02552212 (recorded, tests/fixtures/ctgov) names four PMIDs as its results; a PubMed record holding
    # one of them is the same study; its BACKGROUND references are never links.
    path = ROOT / "tests/fixtures/ctgov/t2x_study_NCT02552212_full_aact.json"
    reg = study_row(json.loads(path.read_text(encoding="utf-8")))
    pmid = reg["linked_pmids"][1]
    pubmed = {"record_id": f"PMID:{pmid}", "source": "PubMed", "pmid": pmid, "doi": None, "title": "a publication",
              "authors": [], "first_author": None, "year": None, "searches": ["aud"]}
    records = pd.DataFrame([{**reg, "searches": ["aud"]}, pubmed])
    result = deduplicate(records)
    assert list(result.records["record_id"]) == [f"PMID:{pmid}"]
    assert reg["record_id"] in result.records.iloc[0]["merged_ids"]
    assert list(result.merges["rule"]) == ["registration's linked PMID"]


def test_registers_line_screening_and_cochrane_lists_from_a_live_search(tmp_path, monkeypatch, capsys):
    records = synthetic_records(6, terms=["gambling"], first_pmid=96_000_001)
    studies = synthetic_studies(8, conditions=["Gambling"], interventions=["Ketamine"],
                                linked_pmids={0: [records[0]["pmid"]]})
    snapshot, screening = tmp_path / "live", tmp_path / "screening"
    monkeypatch.setenv("NCBI_EMAIL", "registers-test@example.org")
    with Emulator(records, aliases={PROTOCOL.query(k): k for k in PROTOCOL.searches}) as eutils, \
            CtgovEmulator(studies) as ctgov:
        monkeypatch.setenv("REVIEWKIT_EUTILS_URL", eutils.base_url)
        monkeypatch.setenv("REVIEWKIT_CTGOV_URL", ctgov.base_url)
        assert main(["search", "--live", "--json", "--snapshot", str(snapshot), "--only", "gambling"]) == 0
        live = json.loads(capsys.readouterr().out)
    ncts = [s["protocolSection"]["identificationModule"]["nctId"] for s in studies]
    (reg,) = live["registers"]
    assert (reg["key"], reg["register"], reg["count"], reg["retrieved"]) == ("gambling", "ClinicalTrials.gov", 8, 8)
    assert reg["ids"] == ncts and reg["query"]["query.intr"] == "Ketamine OR esketamine"

    # offline: the same registrations replayed, nothing asked of any server
    monkeypatch.setenv("REVIEWKIT_CTGOV_URL", "http://127.0.0.1:9/api/v2/")
    assert main(["search", "--offline", "--json", "--snapshot", str(snapshot), "--only", "gambling"]) == 0
    assert json.loads(capsys.readouterr().out)["registers"][0]["ids"] == ncts

    assert main(["prisma", "--offline", "--json", "--snapshot", str(snapshot), "--screening", str(screening)]) == 0
    out = json.loads(capsys.readouterr().out)
    db = out["overall"]["databases"]
    assert db["identified"] == {"PubMed": 6, "ClinicalTrials.gov": 8} and db["not_searched"] == {}
    # the registration linking PMID 96000001 is that record: 14 identified, 13 records to screen
    assert db["duplicates_removed"] == 1
    assert out["by_disorder"]["aud"]["databases"]["not_searched"] == {
        "ClinicalTrials.gov": "not searched in this snapshot"}
    listed = {r["nct_id"]: r["listing"] for r in out["registered_studies"]}
    expected = {study_row(s)["nct_id"]: cochrane_listing(study_row(s)["status"], study_row(s)["results_posted"])
                for s in studies[1:]}
    assert listed == {n: v for n, v in expected.items() if v} and set(listed.values()) == {
        "ongoing study", "awaiting classification"}

    assert main(["screen", "--offline", "--snapshot", str(snapshot), "--screening", str(screening)]) == 0
    capsys.readouterr()
    sheet = pd.read_csv(screening / "title_abstract.csv", dtype=str, keep_default_na=False)
    assert sorted(r for r in sheet["record_id"] if r.startswith("CTG:")) == sorted(f"CTG:{n}" for n in ncts[1:])

    assert main(["prisma", "--offline", "--snapshot", str(snapshot), "--screening", str(screening)]) == 0
    text = capsys.readouterr().out
    assert "registers: identified ClinicalTrials.gov 8;" in text and "Ongoing study (Cochrane" in text

    # the report lists the same registrations (notebook 03), and one a screener excluded drops out
    from reviewkit import notebook
    from reviewkit.project import Project
    from reviewkit.review import Review

    excluded = next(iter(listed))
    sheet.loc[sheet["record_id"] == f"CTG:{excluded}", "final"] = "exclude"
    sheet.to_csv(screening / "title_abstract.csv", index=False)
    review = Review(Project.find(str(ROOT)), live=False, snapshot=str(snapshot), screening=str(screening))
    table = notebook.registered_studies_table(review)
    assert dict(zip(table["nct_id"], table["listing"])) == {n: v for n, v in listed.items() if n != excluded}
    assert notebook.registered_studies_note(review) == (  # only the gambling search went to the register
        "ClinicalTrials.gov not searched in this snapshot: registered studies cannot be listed for 3 of 4 searches.")


def test_the_flow_diagram_names_registers_not_searched():
    from reviewkit.prisma import DatabaseCounts, ReportCounts

    reports = ReportCounts(sought=0, not_retrieved=0, assessed=0, excluded={}, included=0, awaiting=0)
    searched = DatabaseCounts(identified={"PubMed": 5, "ClinicalTrials.gov": 3}, duplicates_removed=0, removed_other=0,
                              records_screened=0, records_excluded=0, records_awaiting=8, reports=reports)
    assert identified_lines(searched)[1] == "  Registers: ClinicalTrials.gov (n\u00a0=\u00a03)"
    sample = DatabaseCounts(identified={"PubMed": 5}, duplicates_removed=0, removed_other=0, records_screened=0,
                            records_excluded=0, records_awaiting=5, reports=reports,
                            not_searched={"ClinicalTrials.gov": "not searched in this sample"})
    assert identified_lines(sample)[1] == "  Registers: ClinicalTrials.gov not searched in this sample"


def test_the_search_notebook_table_says_not_searched_in_words():
    from reviewkit import notebook
    from reviewkit.ctgov import not_searched

    table = notebook.register_table([not_searched(PROTOCOL, "aud", "not searched in this sample")])
    row = table.iloc[0]
    assert (row["register"], row["register count"], row["registrations retrieved"]) == (
        "ClinicalTrials.gov", "not searched in this sample", "not searched in this sample")
    assert "query.intr = Ketamine OR esketamine" in row["query"]


def test_the_report_says_what_the_sample_can_list_of_registered_studies():
    from reviewkit import notebook
    from reviewkit.project import Project
    from reviewkit.review import Review

    review = Review(Project.find(str(ROOT)), live=False)
    assert notebook.registered_studies_table(review).empty
    assert notebook.registered_studies_note(review) == (
        "ClinicalTrials.gov not searched in this sample: registered studies cannot be listed for every search.")
