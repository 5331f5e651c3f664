"""Deduplication across sources: rules, provenance, review list, no false merges."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rapidfuzz import fuzz

from reviewkit import dedupe
from reviewkit.dedupe import deduplicate, normalise_title
from reviewkit.other_methods import read_other_methods


def rec(rid, title, *, source="PubMed", pmid=None, doi=None, year=2020, first="Krupitsky EM", searches=()):
    return {"record_id": rid, "source": source, "pmid": pmid, "doi": doi, "title": title, "year": year,
            "first_author": first, "authors": [first] if first else [], "searches": list(searches)}


def frame(*rows):
    return pd.DataFrame(list(rows)).astype({"year": "Int64"})


ROOT = Path(__file__).resolve().parent.parent
T = "Ketamine psychedelic therapy for heroin addiction: immediate and two-year follow-up"


def test_normalise_title_ignores_case_accents_punctuation():
    assert normalise_title("  Kétamine-Assisted  Therapy: a TRIAL. ") == "ketamine assisted therapy a trial"


def test_same_pmid_merges_and_keeps_every_search():
    r = deduplicate(frame(rec("PMID:1", T, pmid="1", searches=["aud"]), rec("PMID:1b", T, pmid="1", searches=["oud"])))
    assert len(r.records) == 1
    assert r.records.iloc[0]["searches"] == ["aud", "oud"]
    assert r.merges.iloc[0][["kept_id", "removed_id", "rule"]].tolist() == ["PMID:1", "PMID:1b", "PMID"]


def test_doi_match_prefers_database_record_whatever_the_order():
    r = deduplicate(frame(rec("CIT:a", T, source="Citation searching", doi="10.1/x", year=2002),
                          rec("PMID:9", T.upper(), pmid="9", doi="10.1/X", year=2002)))
    assert r.records["record_id"].tolist() == ["PMID:9"]
    assert r.records.iloc[0]["merged_ids"] == ["CIT:a"]
    assert r.merges.iloc[0]["rule"] == "DOI" and r.merges.iloc[0]["removed_source"] == "Citation searching"


def test_title_year_first_author_then_fuzzy():
    r = deduplicate(frame(rec("PMID:1", T, pmid="1"),
                          rec("CIT:a", T.lower() + ".", source="Citation searching"),
                          rec("CIT:b", T.replace("two-year", "two year").replace("immediate", "immediat"),
                              source="Citation searching")))
    assert r.records["record_id"].tolist() == ["PMID:1"]
    rules = dict(zip(r.merges["removed_id"], r.merges["rule"]))
    assert rules["CIT:a"] == "title, year and first author"
    assert rules["CIT:b"].startswith("fuzzy")


def test_uncertain_pairs_are_listed_not_merged():
    r = deduplicate(frame(rec("PMID:1", T, pmid="1", year=2002),
                          rec("CIT:a", T, source="Citation searching", year=2003),       # year differs
                          rec("CIT:b", T, source="Citation searching", first="Smith J"),  # author differs
                          rec("PMID:2", T, pmid="2", year=2020)))                          # different PMID
    assert len(r.records) == 4 and r.merges.empty
    pairs = {(a, b): why for a, b, _, why in r.review.itertuples(index=False)}
    assert "years differ (2002 vs 2003)" in pairs[("PMID:1", "CIT:a")]
    assert "first authors differ" in pairs[("PMID:2", "CIT:b")]


def test_conflicting_identifiers_are_never_merged():
    r = deduplicate(frame(rec("PMID:1", T, pmid="1", doi="10.1/a"), rec("PMID:2", T, pmid="2", doi="10.1/a")))
    assert len(r.records) == 2
    assert "different PMIDs" in r.review.iloc[0]["why_uncertain"]


def test_erratum_is_not_a_duplicate():
    r = deduplicate(frame(rec("PMID:1", T, pmid="1"), rec("PMID:2", "Erratum: " + T, pmid="2")))
    assert len(r.records) == 2 and r.merges.empty


def test_different_short_titles_stay_apart():
    r = deduplicate(frame(rec("PMID:1", "Ketamine", pmid="1"), rec("PMID:2", "Ketamine.", pmid="2", year=2021)))
    assert len(r.records) == 2


def test_ris_and_csv_import(tmp_path):
    ris = tmp_path / "cit.ris"
    ris.write_text("TY  - JOUR\nID  - jones-2020\nTI  - " + T + "\nAU  - Jones, AB\nPY  - 2020\n"
                   "DO  - https://doi.org/10.1/ABC\nT2  - Addiction\nSP  - 1\nEP  - 9\nC1  - oud\nER  - \n")
    df = read_other_methods(ris, known_searches={"aud", "oud"})
    row = df.iloc[0]
    assert row["record_id"] == "CIT:jones-2020" and row["doi"] == "10.1/abc" and row["pages"] == "1-9"
    assert row["searches"] == ["oud"] and row["first_author"] == "Jones AB" and row["year"] == 2020
    csv = tmp_path / "cit.csv"
    csv.write_text("title,authors,year\n" + T + ",Jones AB; Lee C,2020\n")
    again = read_other_methods(csv)
    assert again.iloc[0]["record_id"].startswith("CIT:jones-2020-ketamine")
    assert again.iloc[0]["authors"] == ["Jones AB", "Lee C"]


def test_reference_list_author_styles_still_match():
    """'Krupitsky et al.' and 'Krupitsky, E.' (as citation lists print them) are Krupitsky EM."""
    r = deduplicate(frame(rec("PMID:1", T, pmid="1"),
                          rec("CIT:a", T.lower(), source="Citation searching", first="Krupitsky et al."),
                          rec("CIT:b", T + ".", source="Citation searching", first="Krupitsky E.")))
    assert r.records["record_id"].tolist() == ["PMID:1"] and sorted(r.merges["removed_id"]) == ["CIT:a", "CIT:b"]


def test_replies_letters_and_correction_entries_are_not_duplicates():
    """Same first author and year, title that quotes the article's: held for review, never merged."""
    linked = ["Reply to: " + T, "Re: " + T, "Comment on: " + T, "Notice of retraction: " + T,
              T + " (vol 19, pg 5, 2020)", "Corrigendum to '" + T + "'"]
    rows = [rec("PMID:1", T, pmid="1")] + [rec(f"CIT:{i}", t, source="Citation searching")
                                           for i, t in enumerate(linked)]
    r = deduplicate(frame(*rows))
    assert r.merges.empty and len(r.records) == 1 + len(linked)
    held = r.review[r.review["record_id_a"] == "PMID:1"]
    # the letter scores 98 against the article: it would merge if it were not recognised
    assert {"CIT:0", "CIT:1", "CIT:4", "CIT:5"} <= set(held["record_id_b"])
    why = dict(zip(held["record_id_b"], held["why_uncertain"]))
    assert "one is a notice, reply or comment about the other" in why["CIT:1"]


# --- accuracy and cost at scale -------------------------------------------------

def _bench():
    """bench/bench_dedupe.py, which builds the labelled set and the synthetic records."""
    spec = importlib.util.spec_from_file_location("bench_dedupe", ROOT / "bench" / "bench_dedupe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _bench()


def test_labelled_benchmark_has_no_false_merge_and_keeps_its_recall(bench, tmp_path):
    """130 real corpus records, their copies as other sources deliver them, and notices about them."""
    acc = bench.accuracy(tmp_path)
    assert acc["records"] == 1056
    assert acc["false_merges"] == [] and acc["precision"] == 1.0
    assert acc["recall_excluding_review_kinds"] >= 0.88  # 0.8801 with the all-pairs comparison
    notices = {k: v for k, v in acc["by_kind"].items() if k.startswith("notice")}
    assert notices and all(v["wrongly_merged"] == 0 for v in notices.values())
    # variations a person must confirm are listed for review, never dropped
    assert acc["by_kind"]["year_off"]["sent_to_review"] == acc["by_kind"]["year_off"]["records"]


def test_candidate_search_lists_what_comparing_every_pair_lists(bench, tmp_path, monkeypatch):
    """The sorted neighbourhood against every pair (a window as wide as the set): same merges, and
    every record the exhaustive comparison lists for review is listed."""
    table = bench.labelled_set(tmp_path)[0]
    windowed = deduplicate(table)
    monkeypatch.setattr(dedupe, "WINDOW", len(table))
    everything = deduplicate(table)
    assert windowed.merges.equals(everything.merges)
    pairs = {tuple(p) for p in windowed.review[["record_id_a", "record_id_b"]].to_numpy()}
    exhaustive = {tuple(p) for p in everything.review[["record_id_a", "record_id_b"]].to_numpy()}
    assert pairs <= exhaustive and len(pairs) >= 0.99 * len(exhaustive)
    assert {r for p in pairs for r in p} == {r for p in exhaustive for r in p}


def test_near_duplicate_in_the_next_year_is_found_among_thousands(bench):
    """A typo and an e-pub year: no rule merges it, the neighbourhood search still lists it."""
    table = bench.synthetic(3000)
    original = table.iloc[1234]
    words = original["title"].split()
    words[len(words) // 2] = words[len(words) // 2][:-1]  # one letter lost
    copy = {**original.to_dict(), "record_id": "CIT:typo", "source": "Citation searching", "pmid": None,
            "doi": None, "title": " ".join(words), "year": original["year"] + 1}
    result = deduplicate(pd.concat([table, pd.DataFrame([copy])], ignore_index=True).astype({"year": "Int64"}))
    listed = result.review[(result.review["record_id_a"] == original["record_id"])
                           & (result.review["record_id_b"] == "CIT:typo")]
    assert len(listed) == 1 and "years differ" in listed.iloc[0]["why_uncertain"]


def test_pairs_scored_grow_linearly_with_records(bench, monkeypatch):
    scored = []
    real = dedupe.process.cpdist
    monkeypatch.setattr(dedupe.process, "cpdist", lambda q, c, **kw: scored.append(len(q)) or real(q, c, **kw))
    per_record = []
    for n in (1000, 4000):
        scored.clear()
        deduplicate(bench.synthetic(n))
        per_record.append(sum(scored) / n)
    assert per_record[1] < 1.3 * per_record[0]  # every pair would be 4x per record


def test_a_huge_block_is_compared_as_a_neighbourhood(monkeypatch):
    """2,000 records of one year and first author: bounded work, close titles still merge."""
    monkeypatch.setattr(dedupe, "BLOCK_WINDOW", 10)
    rows = [rec(f"CIT:{i}", f"{T} part {i:04d} of the series", source="Citation searching") for i in range(2000)]
    rows.append(rec("CIT:copy", f"{T} part 0007 of the serie", source="Citation searching"))
    scored = []
    real = dedupe.process.cpdist
    monkeypatch.setattr(dedupe.process, "cpdist", lambda q, c, **kw: scored.append(len(q)) or real(q, c, **kw))
    result = deduplicate(frame(*rows))
    assert sum(scored) < 2001 * (10 + 3 * dedupe.WINDOW)
    assert "CIT:copy" in set(result.merges["removed_id"])


def test_letter_counts_bound_the_distance_from_below():
    """The cheap filter before scoring may only drop pairs rapidfuzz would score below the review score."""
    texts = ["ketamine for alcohol use disorder", "ketamine for alcohol use disorders", "a" * 40000, "b" * 300]
    counts = dedupe._letter_counts(texts).astype(int)
    assert counts[2, 0] == 255 and counts[3, 1] == 255  # capped, never wrapped round
    for i in range(len(texts)):
        for j in range(len(texts)):
            indel = fuzz.ratio(texts[i], texts[j], processor=None)
            bound = np.abs(counts[i] - counts[j]).sum()
            assert (1 - bound / (len(texts[i]) + len(texts[j]))) * 100 >= indel - 1e-9


def test_scoring_in_small_batches_gives_the_same_result(bench, tmp_path, monkeypatch):
    table = bench.labelled_set(tmp_path)[0]
    whole = deduplicate(table)
    monkeypatch.setattr(dedupe, "_SCORE_BATCH", 1)  # score after every candidate step
    batched = deduplicate(table)
    assert batched.merges.equals(whole.merges) and batched.review.equals(whole.review)
