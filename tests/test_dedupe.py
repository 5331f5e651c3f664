"""Deduplication across sources: rules, provenance, review list, no false merges."""

import pandas as pd

from reviewkit.dedupe import deduplicate, normalise_title
from reviewkit.other_methods import read_other_methods


def rec(rid, title, *, source="PubMed", pmid=None, doi=None, year=2020, first="Krupitsky EM", searches=()):
    return {"record_id": rid, "source": source, "pmid": pmid, "doi": doi, "title": title, "year": year,
            "first_author": first, "authors": [first] if first else [], "searches": list(searches)}


def frame(*rows):
    return pd.DataFrame(list(rows)).astype({"year": "Int64"})


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
