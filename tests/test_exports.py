import bibtexparser
import openpyxl
import pandas as pd
import pytest
import rispy

from reviewkit import exports
from reviewkit.errors import ReviewkitError


@pytest.fixture
def records():
    return pd.DataFrame(
        [
            {
                "record_id": "PMID:123", "pmid": "123", "doi": "10.1/abc", "title": "Ketamine & alcohol: a trial",
                "authors": ["Krupitsky EM", "Grinenko AY"], "first_author": "Krupitsky EM",
                "journal": "J Subst Abuse Treat", "journal_iso": "J Subst Abuse Treat", "year": 2002,
                "volume": "23", "issue": "4", "pages": "273-283", "publication_types": ["Randomized Controlled Trial"],
                "mesh_terms": ["Ketamine", "Humans"], "language": "eng", "abstract": "",
            },
            {
                "record_id": "CIT:x", "pmid": None, "doi": None, "title": "Second study",
                "authors": ["Krupitsky EM"], "first_author": "Krupitsky EM", "journal": None, "journal_iso": None,
                "year": 2002, "volume": None, "issue": None, "pages": None, "publication_types": [],
                "mesh_terms": [], "language": None, "abstract": None,
            },
        ]
    ).astype({"year": "Int64"})


def test_ris_round_trips_through_rispy(records):
    entries = rispy.loads(exports.ris_text(records))
    assert len(entries) == 2
    first = entries[0]
    assert first["type_of_reference"] == "JOUR"
    assert first["authors"] == ["Krupitsky EM", "Grinenko AY"]
    assert first["year"] == "2002"
    assert (first["start_page"], first["end_page"]) == ("273", "283")
    assert first["doi"] == "10.1/abc"
    assert first["urls"] == ["https://pubmed.ncbi.nlm.nih.gov/123/"]
    assert "doi" not in entries[1] and "urls" not in entries[1]


def test_bibtex_parses_back_with_unique_keys(records):
    text = exports.bibtex_text(records)
    assert "author = {Krupitsky, E. M. and Grinenko, A. Y.}," in text
    lib = bibtexparser.parse_string(text)
    assert not lib.failed_blocks
    keys = [e.key for e in lib.entries]
    assert keys == ["krupitsky2002", "krupitsky2002a"]
    first = {f.key: f.value.strip("{}") for f in lib.entries[0].fields}
    assert first["author"] == "Krupitsky, E. M. and Grinenko, A. Y."
    assert first["pages"] == "273--283"
    assert first["title"] == r"Ketamine \& alcohol: a trial"


def test_missing_columns_are_named():
    with pytest.raises(ReviewkitError, match="title"):
        exports.ris_text(pd.DataFrame({"record_id": ["a"]}))


def test_tables_as_csv_and_xlsx_with_lists_flattened(records, tmp_path):
    csv_path, xlsx_path = exports.write_table(records[["record_id", "authors"]], tmp_path, "screening")
    back = pd.read_csv(csv_path)
    assert back["authors"].tolist() == ["Krupitsky EM; Grinenko AY", "Krupitsky EM"]
    sheet = openpyxl.load_workbook(xlsx_path).active
    assert [c.value for c in sheet[1]] == ["record_id", "authors"]
    assert sheet["B2"].value == "Krupitsky EM; Grinenko AY"
    assert not list(tmp_path.glob(".*.tmp"))
