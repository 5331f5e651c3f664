import json
import re

import bibtexparser
import openpyxl
import pandas as pd
import pytest
import rispy

from reviewkit import exports
from reviewkit.cli import main
from reviewkit.errors import ReviewkitError
from reviewkit.other_methods import read_other_methods

from helpers import EXAMPLE


@pytest.fixture
def records():
    return pd.DataFrame(
        [
            {
                "record_id": "PMID:123", "pmid": "123", "doi": "10.1/abc", "title": "Ketamine & alcohol: a trial",
                "authors": ["Krupitsky EM", "Grinenko AY", "Duncan WC Jr"], "first_author": "Krupitsky EM",
                "journal": "J Subst Abuse Treat", "journal_iso": "J Subst Abuse Treat", "year": 2002,
                "volume": "23", "issue": "4", "pages": "273-283", "publication_types": ["Randomized Controlled Trial"],
                "mesh_terms": ["Ketamine", "Humans"], "language": "eng", "abstract": "",
            },
            {
                "record_id": "CIT:x", "pmid": None, "doi": None, "title": "Second study,\nits title on two lines",
                "authors": ["Krupitsky EM", "Ketamine Study Group", "et al"], "first_author": "Krupitsky EM",
                "journal": "Journal of Psychopharmacology", "journal_iso": "J Psychopharmacol",
                "year": 2002, "volume": None, "issue": None, "pages": "280-5", "publication_types": [],
                "mesh_terms": [], "language": None, "abstract": None,
            },
        ]
    ).astype({"year": "Int64"})


def test_ris_is_standard_and_round_trips_through_rispy(records):
    text = exports.ris_text(records)
    # One TY ... ER pair per record, only tagged lines inside, nothing but blank lines between records.
    lines = text.splitlines()
    assert [line for line in lines if not re.match(r"^[A-Z][A-Z0-9]  - ", line)] == [""]
    assert [line[:2] for line in lines if line[:2] in ("TY", "ER")] == ["TY", "ER", "TY", "ER"]
    entries = rispy.loads(text)
    assert len(entries) == 2
    first, second = entries
    assert first["type_of_reference"] == "JOUR"
    assert first["authors"] == ["Krupitsky, EM", "Grinenko, AY", "Duncan, WC, Jr"]  # AU  - Surname, Given[, Suffix]
    assert first["year"] == "2002"
    assert (first["start_page"], first["end_page"]) == ("273", "283")
    assert first["secondary_title"] == "J Subst Abuse Treat" and "alternate_title1" not in first
    assert first["doi"] == "10.1/abc"
    assert first["urls"] == ["https://pubmed.ncbi.nlm.nih.gov/123/"]
    assert "doi" not in second and "urls" not in second
    # A collective author stays whole; "et al" is not an author; a line break cannot start a new tag.
    assert second["authors"] == ["Krupitsky, EM", "Ketamine Study Group"]
    assert second["title"] == "Second study, its title on two lines"
    assert (second["start_page"], second["end_page"]) == ("280", "285")  # full last page
    assert (second["secondary_title"], second["alternate_title1"]) == ("Journal of Psychopharmacology", "J Psychopharmacol")


def test_ris_export_imports_as_other_methods_records(records, tmp_path):
    path = tmp_path / "included.ris"
    path.write_text(exports.ris_text(records), encoding="utf-8")
    back = read_other_methods(path).set_index("title")
    first = back.loc["Ketamine & alcohol: a trial"]
    assert first["authors"] == ["Krupitsky EM", "Grinenko AY", "Duncan WC Jr"]  # the records table's own form again
    assert (first["year"], first["journal"], first["volume"], first["issue"], first["pages"], first["pmid"]) == (
        2002, "J Subst Abuse Treat", "23", "4", "273-283", "123")
    second = back.loc["Second study, its title on two lines"]
    assert second["authors"] == ["Krupitsky EM", "Ketamine Study Group"] and second["pages"] == "280-285"


def test_bibtex_parses_back_with_unique_keys(records):
    text = exports.bibtex_text(records)
    assert "author = {Krupitsky, E. M. and Grinenko, A. Y. and Duncan, Jr, W. C.}," in text
    lib = bibtexparser.parse_string(text)
    assert not lib.failed_blocks
    keys = [e.key for e in lib.entries]
    assert keys == ["krupitsky2002", "krupitsky2002a"]
    first = {f.key: f.value.strip("{}") for f in lib.entries[0].fields}
    assert first["author"] == "Krupitsky, E. M. and Grinenko, A. Y. and Duncan, Jr, W. C."
    assert first["pages"] == "273--283"
    assert first["title"] == r"Ketamine \& alcohol: a trial"
    second = {f.key: f.value.strip("{}") for f in lib.entries[1].fields}
    assert second["author"] == "Krupitsky, E. M. and {Ketamine Study Group} and others"  # BibTeX's "et al"
    assert second["pages"] == "280--285"


def test_bibtex_escapes_what_latex_would_read_as_commands():
    assert exports._bibtex_escape(r"a\b {x} 50% & c_d ~ ^") == \
        r"a\textbackslash{}b (x) 50\% \& c\_d \textasciitilde{} \textasciicircum{}"



def test_missing_columns_are_named():
    with pytest.raises(ReviewkitError, match="title"):
        exports.ris_text(pd.DataFrame({"record_id": ["a"]}))


def test_tables_as_csv_and_xlsx_with_lists_flattened(records, tmp_path):
    csv_path, xlsx_path = exports.write_table(records[["record_id", "authors"]], tmp_path, "screening")
    back = pd.read_csv(csv_path)
    assert back["authors"].tolist() == ["Krupitsky EM; Grinenko AY; Duncan WC Jr", "Krupitsky EM; Ketamine Study Group; et al"]
    sheet = openpyxl.load_workbook(xlsx_path).active
    assert [c.value for c in sheet[1]] == ["record_id", "authors"]
    assert sheet["B2"].value == "Krupitsky EM; Grinenko AY; Duncan WC Jr"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture(scope="module")
def included_exports(tmp_path_factory):
    """The sample's included studies exported as notebook 06 exports them, and the records behind them."""
    from reviewkit.notebook import included_records
    from reviewkit.review import Review

    folder = tmp_path_factory.mktemp("exports")
    studies = included_records(Review(EXAMPLE).state)
    exports.write_references(studies, folder, "included_studies")
    return folder, studies


@pytest.mark.parametrize("suffix", ["ris", "bib"])
def test_verify_refs_verifies_every_exported_study_with_a_pmid(included_exports, suffix, capsys):
    folder, studies = included_exports
    assert main(["verify-refs", str(folder / f"included_studies.{suffix}"), "--offline", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == len(studies) == 20  # the 20 reports included at full text
    with_pmid = studies["pmid"].notna().to_numpy()
    assert {r["verdict"] for r, has in zip(results, with_pmid) if has} == {"verified"}
    assert [r["pmid"] for r, has in zip(results, with_pmid) if has] == studies["pmid"].dropna().tolist()
    # Studies found by citation searching have no PMID; they verify against their own records.
    assert {r["verdict"] for r in results} == {"verified"}
