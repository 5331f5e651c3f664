"""Citation verdicts: each path with records built for the purpose, and the live path through the emulator."""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from reviewkit.citations import LocalRecords, check_reference, compare, journal_matches, pages_match
from reviewkit.references import parse_reference

KRUPITSKY_2002 = {
    "record_id": "PMID:111", "pmid": "111", "doi": "10.1016/s0740-5472(02)00275-1",
    "title": "Ketamine psychotherapy for heroin addiction: immediate effects and two-year follow-up",
    "authors": ["Krupitsky E", "Burakov A", "Romanova T"], "journal": "Journal of Substance Abuse Treatment",
    "journal_iso": "J Subst Abuse Treat", "year": 2002, "volume": "23", "issue": "4", "pages": "273-83",
}
PRINTED = ("Krupitsky, E., Burakov, A., et al. (2002). “Ketamine psychotherapy for heroin addiction: "
           "immediate effects and two-year follow-up.” J. Subst. Abuse Treat., 23(4), 273-283.")


def records(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def check(line, *rows):
    return check_reference(parse_reference(line), LocalRecords(records(*rows)))


def test_trivial_differences_do_not_matter():
    assert journal_matches("Drug and Alcohol Dependence", "Drug Alcohol Depend")
    assert journal_matches("The American Journal of Psychiatry", "Am J Psychiatry")
    assert journal_matches("Psychopharmacology", "Psychopharmacology (Berl)")
    assert not journal_matches("Archives of General Psychiatry", "Biological Psychiatry")
    assert pages_match("280-285", "280-5") and pages_match("2062–2071", "2062-71") and pages_match("480", "480")
    assert not pages_match("108-115", "189-198")


def test_verified_with_case_punctuation_abbreviation_and_page_range():
    result = check(PRINTED, KRUPITSKY_2002)
    assert result.verdict == "verified" and result.pmid == "111" and result.field_errors == ()
    assert result.doi == "10.1016/s0740-5472(02)00275-1"
    assert result.live_could_change is False  # verified against a PubMed record: a live check can say no more


def test_exists_with_errors_lists_every_differing_field():
    line = ("Krupitsky, E., Burakov, A., et al. (2011). “Ketamine psychotherapy for heroin addiction: immediate "
            "effects and two-year follow-up.” Journal of Psychopharmacology, 25(2), 280-285.")
    result = check(line, KRUPITSKY_2002)
    assert result.verdict == "exists_with_errors" and result.pmid == "111"
    assert result.field_errors == ("year", "journal", "volume", "issue", "pages")
    assert result.match.identified_by == "title"


def test_identified_by_doi_or_by_locator_when_the_title_is_wrong():
    by_doi = check("Krupitsky EM, Burakov AM, et al. Ketamine for heroin. J Subst Abuse Treat. 2002;23(4):273-83. "
                   "doi: 10.1016/S0740-5472(02)00275-1", KRUPITSKY_2002)
    assert by_doi.verdict == "exists_with_errors" and by_doi.field_errors == ("title",)
    assert by_doi.match.identified_by == "doi"
    by_locator = check("Krupitsky EM, Burakov AM, et al. Ketamine for heroin. J Subst Abuse Treat. 2002;23(4):273-83.",
                       KRUPITSKY_2002)
    assert by_locator.match.identified_by == "journal, volume and first page"


def test_wrong_first_author_is_a_field_error():
    line = PRINTED.replace("Krupitsky, E., Burakov, A.,", "Burakov, A., Krupitsky, E.,")
    result = check(line, KRUPITSKY_2002)
    assert result.verdict == "exists_with_errors" and {"first_author", "authors"} <= set(result.field_errors)


def test_not_found_lists_nearest_real_records_and_never_takes_a_same_surname_record():
    other = {**KRUPITSKY_2002, "record_id": "PMID:222", "pmid": "222", "doi": None, "year": 2007,
             "title": "Single versus repeated sessions of ketamine-assisted psychotherapy", "volume": "39",
             "issue": "1", "pages": "13-9", "journal": "Journal of Psychoactive Drugs", "journal_iso": None}
    line = ("Krupitsky, E., et al. (2011). “Ketamine for the treatment of alcohol dependence: A pilot study.” "
            "Journal of Psychopharmacology, 25(2), 280-285.")
    result = check(line, KRUPITSKY_2002, other)
    assert result.verdict == "not_found" and result.pmid is None and result.match is None
    assert {m.pmid for m in result.candidates} == {"111", "222"}
    assert result.live_could_change  # the local store is a sample


def test_ambiguous_when_two_distinct_records_fit():
    twin = {**KRUPITSKY_2002, "record_id": "PMID:333", "pmid": "333", "doi": None, "year": 2003, "pages": "1-2"}
    line = PRINTED.replace("(2002)", "(2004)")
    result = check(line, KRUPITSKY_2002, twin)
    assert result.verdict == "ambiguous" and {m.pmid for m in result.candidates} == {"111", "333"}
    assert result.pmid is None


def test_same_work_from_two_sources_is_not_ambiguous():
    cit = {**KRUPITSKY_2002, "record_id": "CIT:krupitsky-2002", "pmid": None, "source": "Citation searching"}
    result = check(PRINTED, cit, KRUPITSKY_2002)
    assert result.verdict == "verified" and result.pmid == "111"


def test_verified_without_pmid_says_a_live_check_could_add_one():
    cit = {**KRUPITSKY_2002, "record_id": "CIT:krupitsky-2002", "pmid": None}
    result = check(PRINTED, cit)
    assert result.verdict == "verified" and result.pmid is None and result.live_could_change


def test_compare_is_field_by_field_even_for_a_candidate_handed_over_by_pmid():
    wrong = {**KRUPITSKY_2002, "title": "Something else entirely about rats", "authors": ["Smith J"],
             "volume": "99", "pages": "1-2"}
    match = compare(parse_reference(PRINTED), wrong)
    assert not match.identified and match.field_errors == ()


@pytest.mark.parametrize("missing", ["volume", "issue", "pages"])
def test_a_field_the_record_lacks_is_not_counted_as_an_error(missing):
    result = check(PRINTED, {**KRUPITSKY_2002, missing: None})
    assert result.verdict == "verified"


# --------------------------------------------------------------------------- live, through the E-utilities emulator

BERMAN_2000 = {
    "pmid": "10686270", "doi": "10.1016/s0006-3223(99)00230-9", "year": 2000,
    "title": "Antidepressant effects of ketamine in depressed patients",
    "authors": ["Berman RM", "Cappiello A", "Anand A", "Oren DA"], "journal": "Biological Psychiatry",
    "journal_iso": "Biol Psychiatry", "volume": "47", "issue": "4", "pages": "351-4",
}
# ECitMatch's answer for "Archives of General Psychiatry|2020|57|227": a real-looking but wrong record.
DECOY = {
    "pmid": "99999", "year": 2020, "title": "An unrelated study of sleep", "authors": ["Other A"],
    "journal": "Archives of General Psychiatry", "journal_iso": "Arch Gen Psychiatry", "volume": "57", "issue": "2",
    "pages": "227-34", "terms": [],
}
LI_2010 = {
    "pmid": "20724638", "doi": "10.1126/science.1190287", "year": 2010,
    "title": "mTOR-dependent synapse formation underlies the rapid antidepressant effects of NMDA antagonists",
    "authors": ["Li N", "Lee B", "Liu RJ"], "journal": "Science", "journal_iso": "Science", "volume": "329",
    "issue": "5994", "pages": "959-64", "terms": [],
}


def test_live_path_through_the_emulator_checks_every_candidate_and_records_lookups(tmp_path):
    from reviewkit.citations import PubMedLookup, local_store
    from reviewkit.entrez import Credentials, LiveTransport
    from reviewkit.references import read_references
    from reviewkit.snapshot import Snapshot
    from reviewkit.testing.emulator import Emulator

    refs = read_references(Path(__file__).resolve().parents[1] / "data" / "article" / "references.txt")
    berman, holze, li = refs[0], refs[4], refs[6]
    snapshot = Snapshot.create(tmp_path / "snap", sample=False, note="test")
    with Emulator([BERMAN_2000, DECOY, LI_2010], rate_limit=False) as emu:
        source = PubMedLookup(LiveTransport(snapshot, Credentials(email="test@example.org"), base_url=emu.base_url, timeout=5))
        results = [check_reference(r, source) for r in (berman, holze, li)]
        utilities = [ex.utility for ex in emu.log]
    assert {"ecitmatch", "esearch", "efetch"} <= set(utilities)
    b, h, low = results
    # ECitMatch offered PMID 99999; field by field it is not the cited work, so it is not taken.
    assert b.verdict == "exists_with_errors" and b.pmid == "10686270" and b.mode == "live"
    assert b.field_errors == ("year", "journal", "volume", "issue", "pages") and not b.live_could_change
    assert h.verdict == "not_found" and h.pmid is None
    assert low.verdict == "verified" and low.pmid == "20724638"
    # The looked-up records are now part of the local store: offline gives the same verdicts.
    offline = LocalRecords(local_store(snapshot.root))
    assert [check_reference(r, offline).verdict for r in (berman, li)] == ["exists_with_errors", "verified"]


# Dakwar 2019 as the corpus records it: PubMed shows the first six authors and marks the list
# incomplete (AuthorList CompleteYN="N"), which the records table writes as a last "et al".
DAKWAR_2019 = {
    "record_id": "PMID:31230464", "pmid": "31230464", "doi": "10.1176/appi.ajp.2019.18101123",
    "title": "A Single Ketamine Infusion Combined With Mindfulness-Based Behavioral Modification to Treat "
             "Cocaine Dependence: A Randomized Clinical Trial",
    "authors": ["Dakwar E", "Nunes EV", "Hart CL", "Foltin RW", "Mathew SJ", "Carpenter KM", "et al"],
    "journal": "Am J Psychiatry", "journal_iso": "Am J Psychiatry", "year": 2019, "volume": "176", "issue": "11",
    "pages": "923-930",
}
DAKWAR_TITLE = ("A single ketamine infusion combined with mindfulness-based behavioral modification to treat "
                "cocaine dependence: a randomized clinical trial. Am J Psychiatry. 2019;176(11):923-930.")


def test_citation_with_all_authors_verifies_against_a_record_ending_in_et_al():
    all_ten = ("Dakwar E, Nunes EV, Hart CL, Foltin RW, Mathew SJ, Carpenter KM, Choi CJJ, Basaraba CN, "
               "Pavlicova M, Levin FR. " + DAKWAR_TITLE)
    result = check(all_ten, DAKWAR_2019)
    assert result.verdict == "verified" and result.field_errors == () and result.pmid == "31230464"
    assert check("Dakwar E, Nunes EV, Hart CL, et al. " + DAKWAR_TITLE, DAKWAR_2019).verdict == "verified"


def test_record_ending_in_et_al_still_checks_the_authors_it_lists():
    # the third author is wrong: a name the record gives disagrees
    wrong = check("Dakwar E, Nunes EV, Levin FR, Foltin RW, Mathew SJ, Carpenter KM, Choi CJJ. " + DAKWAR_TITLE,
                  DAKWAR_2019)
    assert wrong.verdict == "exists_with_errors" and wrong.field_errors == ("authors",)
    # three authors and no "et al": the citation leaves out authors the record names
    short = check("Dakwar E, Nunes EV, Hart CL. " + DAKWAR_TITLE, DAKWAR_2019)
    assert short.verdict == "exists_with_errors" and short.field_errors == ("authors",)
    # "et al" is not an author: it never makes a record a candidate or a first author
    assert compare(parse_reference("Et Al. " + DAKWAR_TITLE), {**DAKWAR_2019, "authors": ["et al"]}).first_author is None


def test_local_candidates_are_exactly_the_records_the_rule_selects():
    """The word indexes only narrow the search: the records returned are those the rule picks when it
    looks at every record (surnames after folding, suffixes, several-word surnames, "et al", DOIs, long
    titles of which only 50 significant words count, missing values)."""
    import random

    from reviewkit.citations import _name_parts, _present, _record_authors, _significant_words

    rng = random.Random(7)
    surnames = ["Krupitsky", "Krüpitsky", "de Bruin", "Bruin", "Duncan", "O'Brien", "Müller-Lüdenscheidt", "Li"]
    words = ["ketamine", "heroin", "alcohol", "therapy", "trial", "the", "of", "follow", "up", "dependence", "Ketamin"]

    def author() -> str:
        name = f"{rng.choice(surnames)} {rng.choice(['E', 'EM', 'A', 'Jr', ''])}".strip()
        return name + (" Jr" if rng.random() < 0.1 else "")

    rows = []
    for i in range(400):
        listed = [author() for _ in range(rng.randint(0, 4))] + (["et al"] if rng.random() < 0.2 else [])
        listed += ["—"] if rng.random() < 0.02 else []  # a name that folds to nothing
        title = " ".join(rng.choice(words) for _ in range(rng.choice([0, 3, 8, 60])))
        rows.append({"record_id": f"R{i}", "authors": listed if rng.random() < 0.95 else None,
                     "title": title if rng.random() < 0.95 else None,
                     "doi": rng.choice([None, "", "10.1/ABC", "10.1/abc", "10.2/x"])})
    store = LocalRecords(records(*rows))
    base = parse_reference(PRINTED)
    refs = [replace(base, authors=tuple(a), title=t, doi=d)
            for a, t, d in [(["Krupitsky E"], "Ketamine therapy for heroin", None),
                            (["de Bruin NM", "Li X"], None, "10.1/abc"),
                            (["Muller-Ludenscheidt A"], "alcohol dependence trial follow up", "10.1/ABC"),
                            ([], "ketamine heroin alcohol therapy trial follow up dependence", None),
                            (["Nobody Z"], "", None), (["—"], "heroin trial", None)]]
    def picked(ref, row) -> bool:  # the rule, record by record
        names = {_name_parts(a)[0] for a in ref.authors}
        sig = set(_significant_words(ref.title, limit=50))
        if any(_name_parts(a)[0] in names for a in _record_authors(row["authors"])[0]):
            return True
        if ref.doi and _present(row.get("doi")) and str(row["doi"]).lower() == ref.doi:
            return True
        shared = sig & set(_significant_words(row.get("title"), limit=50))
        return bool(sig) and len(shared) >= max(2, len(sig) // 2)

    for ref in refs:
        expected = [r["record_id"] for r in rows if picked(ref, r)]
        assert store.candidates(ref)["record_id"].tolist() == expected, ref.authors
    assert LocalRecords(records()).candidates(refs[0]).empty
