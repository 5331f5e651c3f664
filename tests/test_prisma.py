"""PRISMA 2020 counts from the screening state; the sample's flow checked against the corpus."""

import json
import re
import shutil
from collections import Counter
from dataclasses import replace

import pytest

from reviewkit.cli import main
from reviewkit.errors import ReviewkitError
from reviewkit.flow_diagram import draw
from reviewkit.io import read_jsonl
from reviewkit.prisma import check, prisma_counts, prisma_report
from reviewkit.screening import read_sheet
from reviewkit.screening_state import build_state, write_state

from helpers import PROTOCOL, ROOT
from helpers import SAMPLE_DIR as SAMPLE
from helpers import SAMPLE_SCREENING as SCREENING

KEYS = ["aud", "oud", "cocaine", "gambling"]
REASONS = PROTOCOL.screening_reasons


@pytest.fixture(scope="module")
def state():
    return build_state(SAMPLE, SCREENING, PROTOCOL)


# Reports the curator included that data/corpus/ERRATA.md shows fail the protocol at full text.
ERRATA_EXCLUDED = {"Ketamine can reduce harmful drinking by pharmacologically rewriting drinking memories":
                   "wrong population",
                   "Response of Refractory Gambling Disorder to Intravenous Ketamine": "single-patient case report"}


def corpus_expectation(key=None):
    """What the corpus implies, computed here without reviewkit's screening code."""
    recs = [r for r in read_jsonl(ROOT / "data" / "corpus" / "records.jsonl")
            if r["collection"] == "search" and r["retrieved_by"] and (key is None or key in r["retrieved_by"])]
    pubmed = [r for r in recs if r["pmid"]]
    other = [r for r in recs if not r["pmid"]]
    included = [r for r in recs if r["would_include"] and r["title"] not in ERRATA_EXCLUDED]
    # identified: every search's hits; a record two searches found is one duplicate removed
    hits = len(pubmed) if key else sum(len(r["retrieved_by"]) for r in pubmed)
    return {"identified": hits, "unique": len(pubmed), "excluded": sum(not r["would_include"] for r in pubmed),
            "sought": sum(r["would_include"] for r in pubmed), "other": len(other),
            "full_text_excluded": Counter(ERRATA_EXCLUDED[r["title"]] for r in pubmed if r["title"] in ERRATA_EXCLUDED),
            "other_excluded": sum(not r["would_include"] or r["title"] in ERRATA_EXCLUDED for r in other),
            "reports_included": len(included)}


# The protocol reason for each study design its eligibility excludes, read from
# the corpus's structured `design` field (reviewkit maps the curator's free text,
# so the two routes check each other).
DESIGN_REASON = {"animal": "animal study", "narrative_review": "review or meta-analysis",
                 "systematic_review": "review or meta-analysis", "meta_analysis": "review or meta-analysis",
                 "commentary": "editorial or commentary", "protocol": "protocol without results",
                 "case_report": "single-patient case report", "lab_study": "healthy volunteers or laboratory challenge"}
# Excluded records of an eligible design: what the curator says is wrong with each, read by hand.
CURATOR_REASON = {
    "depression treatment study; alcohol only as family-history predictor": "not an addictive disorder",
    "bipolar depression study; alcohol only as family-history predictor": "not an addictive disorder",
    "chronic-pain patients on prescribed opioids (not OUD); no comparator; journal likely not PubMed-indexed":
        "not an addictive disorder",
    "qualitative interview study; no efficacy outcomes": "no usable outcome",
}
NOT_TREATMENT = "ketamine not given as treatment"  # every other such record: misuse, sedation, forensics


def expected_reason(rec, stage):
    if rec["design"] in DESIGN_REASON:
        return DESIGN_REASON[rec["design"]]
    reason = CURATOR_REASON.get(rec["exclusion_reason"], NOT_TREATMENT)
    # the title/abstract list has no outcome reason: judging outcomes needs the report
    return "other" if stage == "title_abstract" and reason == "no usable outcome" else reason


@pytest.mark.parametrize("key", [None, *KEYS])
def test_other_methods_exclusions_are_grouped_by_the_protocol_reason(state, key):
    """Other-method records skip title/abstract screening, so study designs must be full-text reasons."""
    other = [r for r in read_jsonl(ROOT / "data" / "corpus" / "records.jsonl")
             if r["collection"] == "search" and r["retrieved_by"] and (key is None or key in r["retrieved_by"])
             and not r["pmid"]]
    expected = Counter(expected_reason(r, "full_text") for r in other if not r["would_include"])
    expected.update(ERRATA_EXCLUDED[r["title"]] for r in other if r["title"] in ERRATA_EXCLUDED)
    got = prisma_counts(state, key).other_methods.reports.excluded
    assert got == dict(expected) and "other" not in got


def test_title_abstract_reasons_follow_the_design(state):
    corpus = [r for r in read_jsonl(ROOT / "data" / "corpus" / "records.jsonl")
              if r["collection"] == "search" and r["retrieved_by"] and r["pmid"] and not r["would_include"]]
    sheet = state.sheet("title_abstract").set_index("record_id")
    assert {r["pmid"]: sheet.at[f"PMID:{r['pmid']}", "exclusion_reason"] for r in corpus} == \
        {r["pmid"]: expected_reason(r, "title_abstract") for r in corpus}


@pytest.mark.parametrize("key", [None, *KEYS])
def test_sample_counts_match_the_corpus(state, key):
    c = prisma_counts(state, key)
    e = corpus_expectation(key)
    db, om = c.databases, c.other_methods
    assert db.identified == {"PubMed": e["identified"]}
    # the sample holds no register search: ClinicalTrials.gov is named as not searched, never counted as 0
    assert db.not_searched == {"ClinicalTrials.gov": "not searched in this sample"}
    # the corpus holds no duplicate records: what is removed is the searches' overlap
    assert (db.duplicates_removed, db.removed_other) == (e["identified"] - e["unique"], 0)
    assert (db.records_screened, db.records_excluded) == (e["unique"], e["excluded"])
    assert (db.reports.sought, db.reports.not_retrieved, db.reports.assessed) == (e["sought"], 0, e["sought"])
    assert db.reports.excluded == dict(e["full_text_excluded"])
    assert om.identified == {"Citation searching": e["other"]}
    assert (om.reports.sought, om.reports.assessed) == (e["other"], e["other"])
    assert sum(om.reports.excluded.values()) == e["other_excluded"]
    assert c.reports_included == e["reports_included"] and c.complete


def test_sample_overall_numbers(state):
    c = prisma_counts(state)
    # 69 hits of the four searches, 56 distinct records: 13 duplicates between searches (issue 14)
    assert (c.databases.identified["PubMed"], c.databases.duplicates_removed, c.databases.records_screened) == (69, 13, 56)
    assert (c.databases.records_excluded, c.databases.reports.sought) == (46, 10)
    assert c.other_methods.identified["Citation searching"] == 54
    # the searches' hits add up to the databases' identified
    assert sum(prisma_counts(state, k).databases.identified["PubMed"] for k in KEYS) == 69
    # 20 reports (22 the curator included, less the two ERRATA.md excludes); three secondary
    # analyses share their trial's participants (corpus README and summaries)
    assert (c.studies_included, c.reports_included) == (17, 20)


def test_citation_check_records_are_not_in_the_review(state):
    ids = set(state.identified["record_id"])
    lookups = [r for r in read_jsonl(ROOT / "data" / "corpus" / "records.jsonl") if r["collection"] == "citation-check"]
    assert not {f"PMID:{r['pmid']}" for r in lookups if r["pmid"]} & ids
    assert len(state.identified) == 110


def test_arithmetic_errors_fail_loudly(state):
    c = prisma_counts(state)
    broken = replace(c, databases=replace(c.databases, records_excluded=c.databases.records_excluded + 1,
                                          reports=replace(c.databases.reports, assessed=11)))
    with pytest.raises(ReviewkitError, match="reports assessed != excluded with reasons"):
        check(broken)


def test_pending_records_are_counted_not_hidden(tmp_path):
    state = build_state(SAMPLE, tmp_path, PROTOCOL)  # no decisions yet
    c = prisma_counts(state)
    assert (c.databases.records_screened, c.databases.records_awaiting) == (0, 56)
    assert c.other_methods.reports.awaiting == 54 and not c.complete


def test_json_shape_and_cli(capsys, tmp_path):
    shutil.copytree(SCREENING, tmp_path / "s")
    assert main(["prisma", "--offline", "--json", "--screening", str(tmp_path / "s"),
                 "--diagram", str(tmp_path / "flow")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sample"] is True and list(out["by_disorder"]) == KEYS
    for c in [out["overall"], *out["by_disorder"].values()]:
        assert set(c) == {"databases", "other_methods", "studies_included", "reports_included"}
        assert c["databases"]["identified"]["ClinicalTrials.gov"] is None  # not searched: unknown, not 0
        assert c["databases"]["not_searched"] == {"ClinicalTrials.gov": "not searched in this sample"}
        assert set(c["databases"]) == {"identified", "not_searched", "duplicates_removed", "removed_other",
                                       "records_screened",
                                       "records_excluded", "reports_sought", "reports_not_retrieved",
                                       "reports_assessed", "reports_excluded"}
        assert set(c["other_methods"]) == {"identified", "reports_sought", "reports_not_retrieved",
                                           "reports_assessed", "reports_excluded"}
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "flow.svg").read_bytes()[:500]
    assert main(["screen", "--offline", "--screening", str(tmp_path / "s")]) == 0
    assert "0 new" in capsys.readouterr().out
    assert main(["prisma", "--offline", "--screening", str(tmp_path / "s")]) == 0
    text = capsys.readouterr().out
    assert ("databases: identified PubMed 69; registers: identified ClinicalTrials.gov not searched in this sample; "
            "duplicates removed 13;") in text
    assert "other methods: identified Citation searching 54" in text
    assert not re.search(r"[{}]|\['|None|True|False", text)  # words and numbers: no dict, list or None reprs


def test_shipped_sheets_are_what_screen_would_write(state, tmp_path):
    """Rerunning over the shipped decisions changes no CSV byte; the XLSX copies
    (not shipped) are written on demand and hold the same sheets."""
    shutil.copytree(SCREENING, tmp_path / "s", ignore=shutil.ignore_patterns("*.xlsx"))
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").glob("*.csv")}
    write_state(build_state(SAMPLE, tmp_path / "s", PROTOCOL), tmp_path / "s")
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").glob("*.csv")} == before
    for stage in ("title_abstract", "full_text"):
        (tmp_path / "s" / f"{stage}.csv").rename(tmp_path / f"{stage}.csv")  # read the XLSX alone
        assert read_sheet(tmp_path / "s", stage, REASONS[stage]).equals(state.sheet(stage))


def test_diagram_files(state, tmp_path):
    paths = draw(prisma_report(state).overall, tmp_path / "d", title="t", note="SAMPLE")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)


def test_boxes_add_up_the_two_columns(state):
    c = prisma_counts(state)
    boxes = c.boxes()
    d = c.to_dict()
    assert boxes["records identified from databases"] == d["databases"]["identified"]["PubMed"]
    assert boxes["records identified from registers"] == "ClinicalTrials.gov not searched in this sample"
    assert boxes["records identified from other methods"] == sum(d["other_methods"]["identified"].values())
    assert boxes["reports assessed"] == d["databases"]["reports_assessed"] + d["other_methods"]["reports_assessed"]
    assert boxes["reports excluded"] == (sum(d["databases"]["reports_excluded"].values())
                                         + sum(d["other_methods"]["reports_excluded"].values()))
    # what was assessed is excluded, included, or awaiting
    assert boxes["reports assessed"] == boxes["reports excluded"] + boxes["reports included"]


def test_diagram_is_readable_at_its_natural_size_on_a4(state):
    """Every text at least 8 pt at the figure's natural size (the size the report shows and prints it:
    reviewkit.notebook.show_image), the figure no wider than an A4 page inside 12 mm margins, every text
    inside the figure and none over another."""
    from reviewkit import flow_diagram

    fig = flow_diagram.figure(prisma_counts(state), title="PRISMA 2020 flow diagram",
                              note="Sample data: a curated sample of real studies, not a complete PubMed search.")
    try:
        width, _ = fig.get_size_inches()
        assert width <= (210 - 2 * 12) / 25.4
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and getattr(a, "get_text", None))
                 if t.get_text().strip()]
        assert len(texts) > 20 and min(t.get_fontsize() for t in texts) >= flow_diagram.MIN_FONT == 8
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in texts]
        assert all(fig.bbox.contains(b.x0, b.y0) and fig.bbox.contains(b.x1, b.y1) for b in boxes)
        overlaps = [(texts[i].get_text()[:30], texts[j].get_text()[:30]) for i in range(len(boxes))
                    for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
        assert overlaps == []
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)



def test_diagram_png_records_its_resolution(state, tmp_path):
    """The report shows a PNG at the resolution it records: 1 pt in the figure is 1 pt on screen."""
    from reviewkit import flow_diagram
    from reviewkit.notebook import natural_width

    png, _ = draw(prisma_counts(state), tmp_path / "d", title="t")
    fig = flow_diagram.figure(prisma_counts(state), title="t")
    try:
        assert natural_width(png) == round(fig.get_size_inches()[0] * 96)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_a_reference_naming_one_search_that_copies_another_searchs_record_keeps_counts_whole(tmp_path):
    """Citation searching for one search (C1 aud) finds a paper that only another search found in
    PubMed: merged as a duplicate, it must not make aud's database column keep more than it found
    (a negative count stopped reviewkit run on a 100,000-record benchmark)."""
    from reviewkit.records import load_records

    snap = tmp_path / "snap"
    shutil.copytree(SAMPLE, snap)
    records = load_records(snap)
    other = records[records["searches"].map(lambda s: "aud" not in s) & (records["doi"].fillna("") != "")].iloc[0]
    ris = snap / "other_methods" / "citation_searching.ris"
    ris.write_text(ris.read_text(encoding="utf-8") + "\n".join([
        "", "99.", "TY  - JOUR", f"TI  - {other['title']}", f"PY  - {other['year']}", f"DO  - {other['doi']}",
        "C1  - aud", "ER  - ", ""]), encoding="utf-8")
    state = build_state(snap, tmp_path / "screening", PROTOCOL)
    merged = state.dedupe.merges
    assert (merged["kept_id"] == other["record_id"]).any()  # the copy was merged into the PubMed record
    before = prisma_counts(build_state(SAMPLE, tmp_path / "screening0", PROTOCOL), "aud")
    after = prisma_counts(state, "aud")  # raised "a negative count" before
    assert after.databases == before.databases
    assert after.other_methods.identified == before.other_methods.identified
    report = prisma_report(state)
    assert report.overall.databases.duplicates_removed == prisma_counts(state).databases.duplicates_removed
