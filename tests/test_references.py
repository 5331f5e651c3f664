"""Parsing printed references (the article's nine, Vancouver lines), BibTeX and RIS."""

from pathlib import Path

import pytest

from reviewkit.references import (
    Reference,
    ReferenceParseError,
    Unparsed,
    parse_bibtex,
    parse_lines,
    parse_reference,
    parse_ris,
    read_references,
)

ARTICLE_REFS = Path(__file__).resolve().parents[1] / "data" / "article" / "references.txt"


def test_article_reference_list_parses_all_nine_as_printed():
    refs = read_references(ARTICLE_REFS)
    assert len(refs) == 9 and all(isinstance(r, Reference) for r in refs)
    berman = refs[0]
    assert berman.authors == ("Berman RM", "Cappiello A", "Anand A") and berman.et_al
    assert (berman.year, berman.journal, berman.volume, berman.issue, berman.pages) == (
        2020, "Archives of General Psychiatry", "57", "2", "227-234")
    assert berman.title == "Antidepressant effects of ketamine in depressed patients"  # curly quotes and final dot gone
    dore = refs[1]
    assert dore.authors == ("Dore JJ", "Boas M", "Tinkham S") and not dore.et_al
    assert (dore.volume, dore.issue, dore.pages) == ("118", None, "108-115")
    morgan = refs[7]
    assert (morgan.first_author, morgan.volume, morgan.pages) == ("Morgan JK", "209", "107866")
    zanos = refs[8]
    assert zanos.authors == ("Zanos P", "Gould TD") and zanos.title == "Mechanisms of ketamine action as an antidepressant"
    assert [r.year for r in refs] == [2020, 2020, 2020, 2020, 2021, 2011, 2010, 2020, 2018]
    assert refs[5].where.endswith("references.txt, line 6")


def test_apa_without_quotes_and_with_doi_and_en_dash():
    ref = parse_reference("Zanos, P., & Gould, T. D. (2018). Mechanisms of ketamine action as an antidepressant. "
                          "Molecular Psychiatry, 23(4), 801–811. https://doi.org/10.1038/MP.2017.255")
    assert ref.title == "Mechanisms of ketamine action as an antidepressant"
    assert ref.pages == "801–811" and ref.doi == "10.1038/mp.2017.255"


@pytest.mark.parametrize("line, expected", [
    ("1. Krupitsky EM, Burakov AM, Dunaevsky IV, et al. Single versus repeated sessions of ketamine-assisted "
     "psychotherapy for people with heroin dependence. J Psychoactive Drugs. 2007 Mar;39(1):13-9.",
     (("Krupitsky EM", "Burakov AM", "Dunaevsky IV"), True, 2007, "J Psychoactive Drugs", "39", "1", "13-9")),
    ("Dakwar E, Nunes EV. Therapeutic infusions of ketamine: do the psychoactive effects matter? "
     "Drug Alcohol Depend. 2014;136:153-7.",
     (("Dakwar E", "Nunes EV"), False, 2014, "Drug Alcohol Depend", "136", None, "153-7")),
])
def test_vancouver_lines(line, expected):
    ref = parse_reference(line)
    assert (ref.authors, ref.et_al, ref.year, ref.journal, ref.volume, ref.issue, ref.pages) == expected


def test_vancouver_doi_is_kept_out_of_the_pages():
    ref = parse_reference("Li N, Lee B, Duman RS. mTOR-dependent synapse formation underlies the rapid antidepressant "
                          "effects of NMDA antagonists. Science. 2010;329(5994):959-64. doi: 10.1126/science.1190287.")
    assert (ref.pages, ref.doi) == ("959-64", "10.1126/science.1190287")


def test_unparseable_lines_get_a_message_not_a_crash():
    items = parse_lines("Berman, R. M. (2000). “Title.” Biol Psychiatry, 47(4), 351-354.\n\nnot a reference at all\n",
                        "refs.txt")
    assert isinstance(items[0], Reference)
    assert isinstance(items[1], Unparsed) and items[1].where == "refs.txt, line 3"
    assert "refs.txt, line 3" in items[1].message and "APA" in items[1].message
    with pytest.raises(ReferenceParseError, match="never closed"):
        parse_reference("Berman, R. M. (2000). “Antidepressant effects Biol Psychiatry, 47(4), 351-354.")


BIB = r"""
@article{berman2000,
  author = {Berman, Robert M. and Cappiello, A. and others},
  title = {{Antidepressant} effects of ketamine in depressed patients},
  journal = {Biological Psychiatry}, year = {2000}, volume = {47}, number = {4}, pages = {351--354},
  doi = {10.1016/S0006-3223(99)00230-9}
}
@article{noyear, author = {Li, N.}, title = {x}}
@article{badyear, author = {Li, N.}, title = {x}, year = {in press}}
@article{broken, title = {never closed
"""


def test_bibtex_entries_and_failures_in_file_order():
    items = parse_bibtex(BIB, "refs.bib")
    ref = items[0]
    assert ref.authors == ("Berman RM", "Cappiello A") and ref.et_al
    assert (ref.year, ref.title, ref.journal, ref.volume, ref.issue, ref.pages, ref.doi) == (
        2000, "Antidepressant effects of ketamine in depressed patients", "Biological Psychiatry", "47", "4",
        "351-354", "10.1016/s0006-3223(99)00230-9")
    # No year: read, year unknown (compared on the other fields); a year that is not one: unparsed.
    assert isinstance(items[1], Reference) and items[1].year is None and items[1].authors == ("Li N",)
    assert isinstance(items[2], Unparsed) and "four-digit year" in items[2].message
    assert isinstance(items[3], Unparsed) and items[3].where == "refs.bib, line 10"


RIS = """TY  - JOUR
AU  - Krupitsky, E. M.
AU  - Burakov, A. M.
PY  - 2002
TI  - Ketamine psychotherapy for heroin addiction: immediate effects and two-year follow-up
T2  - Journal of Substance Abuse Treatment
VL  - 23
IS  - 4
SP  - 273
EP  - 283
ER  - 

TY  - JOUR
TI  - A record without authors
ER  - 
"""


def test_ris_records(tmp_path):
    path = tmp_path / "refs.ris"
    path.write_text(RIS, encoding="utf-8")
    items = read_references(path)
    ref = items[0]
    assert ref.authors == ("Krupitsky EM", "Burakov AM")
    assert (ref.year, ref.journal, ref.volume, ref.issue, ref.pages) == (
        2002, "Journal of Substance Abuse Treatment", "23", "4", "273-283")
    assert isinstance(items[1], Unparsed) and items[1].where.endswith("refs.ris, record 2")
    assert parse_ris(RIS)[0].title.startswith("Ketamine psychotherapy")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReferenceParseError, match="cannot read reference file"):
        read_references(tmp_path / "nope.txt")


@pytest.mark.parametrize("written, expected", [
    ("Dakwar, E", "Dakwar E"),                 # the standard RIS form
    ("Dakwar E", "Dakwar E"),                  # PubMed's form, no comma: the initials are last
    ("Krupitsky, E. M.", "Krupitsky EM"),
    ("Krupitsky, EM", "Krupitsky EM"),         # capitals run together are initials, not one name
    ("Duncan, W. C., Jr", "Duncan WC Jr"),     # RIS: Last, Given, Suffix
    ("Duncan WC Jr", "Duncan WC Jr"),
    ("Elias Dakwar", "Dakwar E"),              # given names first
    ("de Bruin, N. M.", "de Bruin NM"),
    ("Kane-Gill, S. L.", "Kane-Gill SL"),
    ("Ketamine Study Group", "Ketamine Study Group"),  # a collective author stays whole
])
def test_ris_author_names_in_every_usual_form(written, expected):
    (ref,) = parse_ris(f"TY  - JOUR\nAU  - {written}\nPY  - 2019\nTI  - A title\nER  - \n")
    assert ref.authors == (expected,)


def test_bibtex_suffix_written_last_comma_first():
    (ref,) = parse_bibtex("@article{d, author = {Duncan, Jr, William C. and Nunes, E. V.}, title = {T}, year = {2020}}")
    assert ref.authors == ("Duncan WC Jr", "Nunes EV")


def test_numbered_ris_records_and_an_et_al_author():
    text = ("1.\nTY  - JOUR\nAU  - Dakwar E\nAU  - Nunes EV\nAU  - et al\nPY  - 2019\nTI  - First\nER  - \n\n"
            "2.\nTY  - JOUR\nAU  - Yoon, G\nTI  - Second, without a year\nER  - \n")
    first, second = parse_ris(text, "numbered.ris")
    assert first.authors == ("Dakwar E", "Nunes EV") and first.et_al and first.year == 2019
    assert second.authors == ("Yoon G",) and second.year is None and not second.et_al
