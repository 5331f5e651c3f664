"""Fuzzing the readers of files people write (issue 13): the screening-sheet reader, the reference
parser and the protocol loader give a result or a ``ReviewkitError``, never another exception, and
each input is handled within a time bound (hypothesis' ``deadline``)."""

from __future__ import annotations

import io
import tempfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewkit.errors import ReviewkitError
from reviewkit.protocol import Protocol, load_protocol
from reviewkit.references import Reference, Unparsed, parse_bibtex, parse_lines, parse_reference, parse_ris
from reviewkit.screening import build_sheet, read_sheet, sheet_columns, write_sheet
from reviewkit.tables import _lines

from helpers import PROTOCOL, ROOT, SAMPLE_SCREENING

FUZZ = settings(max_examples=60, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)
TA_REASONS = PROTOCOL.screening_reasons["title_abstract"]
SAMPLE_SHEET = (SAMPLE_SCREENING / "title_abstract.csv").read_bytes()
PROTOCOL_TEXT = (ROOT / "data" / "protocol.yml").read_text()

# Text that looks like the files: separators, quotes, formula starts, control characters, non-ASCII.
# (Not lone surrogates: no UTF-8 file holds them.)
cell_text = st.text(alphabet=st.sampled_from(list("ab ,;\"'\n\r\t=+-@:|()[]{}#&._x0123456789é€\x00\x08\\"))
                    | st.characters(blacklist_categories=("Cs",)), max_size=40)


def _read_csv_bytes(data: bytes) -> pd.DataFrame | None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "title_abstract.csv").write_bytes(data)
        try:
            return read_sheet(folder, "title_abstract", TA_REASONS)
        except ReviewkitError:
            return None


# --- the sheet reader ---------------------------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=3000))
def test_sheet_reader_on_any_bytes(data):
    _read_csv_bytes(data)


@settings(FUZZ, max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("a,\"\r\n\x0b\x0c\x1c\x85\u2028é ")), max_size=30))
def test_the_csv_reader_gets_the_lines_stringio_would_give(text):
    """The sheet reader hands the csv module its text a line at a time (StringIO would hold four bytes a
    character): the same lines as ``io.StringIO(text, newline="")``, so the same rows, line numbers and errors."""
    assert list(_lines(text)) == list(io.StringIO(text, newline=""))
    assert _csv_rows(iter(_lines(text))) == _csv_rows(io.StringIO(text, newline=""))


def _csv_rows(lines):
    import csv

    reader = csv.reader(lines, strict=True)
    try:
        return [(row, reader.line_num) for row in reader]
    except csv.Error as exc:
        return str(exc), reader.line_num


@FUZZ
@given(st.integers(0, len(SAMPLE_SHEET) - 1))
def test_a_real_sheet_cut_anywhere_is_whole_rows_or_an_error(cut):
    """Cut at any byte (saved while being written), a sheet is an error or its first rows, whole
    (a cut between rows); never a shorter sheet with a half row filled in, as pandas reads it."""
    got = _read_csv_bytes(SAMPLE_SHEET[:cut])
    if got is not None:
        whole = pd.read_csv(io.BytesIO(SAMPLE_SHEET), dtype=str, keep_default_na=False)
        assert got.to_numpy().tolist() == whole.to_numpy().tolist()[:len(got)]


@FUZZ
@given(st.integers(0, len(SAMPLE_SHEET) - 1), st.binary(min_size=1, max_size=8))
def test_a_real_sheet_damaged_anywhere_reads_or_names_the_problem(at, damage):
    _read_csv_bytes(SAMPLE_SHEET[:at] + damage + SAMPLE_SHEET[at + len(damage):])


@settings(FUZZ, max_examples=40)
@given(st.lists(st.fixed_dictionaries({c: cell_text for c in ("title", "notes", "my_tags")}), min_size=1, max_size=6))
def test_any_text_people_type_survives_a_round_trip(rows):
    records = pd.DataFrame([{"record_id": f"PMID:{i + 1}", "source": "PubMed", "title": r["title"], "abstract": "",
                             "authors": [], "journal": "", "year": 2020, "publication_types": [], "searches": []}
                            for i, r in enumerate(rows)])
    sheet = build_sheet(records, "title_abstract", ("ketamine",))
    sheet["notes"] = [r["notes"] for r in rows]
    sheet["my_tags"] = [r["my_tags"] for r in rows]
    with tempfile.TemporaryDirectory() as folder:
        try:
            write_sheet(folder, "title_abstract", sheet)
        except ReviewkitError:  # characters XLSX cannot hold are refused by name, never written half
            assert not (Path(folder) / "title_abstract.csv").exists()
            return
        for name in ("title_abstract.xlsx", "title_abstract.csv"):
            alone = Path(folder) / name.split(".")[1]
            alone.mkdir()
            (alone / name).write_bytes((Path(folder) / name).read_bytes())
            got = read_sheet(alone, "title_abstract", TA_REASONS)
            assert got["my_tags"].tolist() == sheet["my_tags"].tolist()
            assert got["notes"].tolist() == [n.strip() for n in sheet["notes"]]  # decision columns are trimmed
            assert list(got.columns) == sheet_columns("title_abstract") + ["my_tags"]


# --- the reference parser ---------------------------------------------------------------------------------------

reference_like = st.lists(st.sampled_from(["Smith", ", ", "A", "A.", "  ", " ", "-", "&", " and ", "et al.", "(2020)",
                                           "(", ")", ". ", "“", "”", "\"", "Title", "?", "J Psychiatry", ";",
                                           ":", "57", "(2)", "227-234", "x", "doi:10.1/x", "•", "1."]),
                          max_size=400).map("".join)


@settings(FUZZ, max_examples=150)
@given(reference_like | st.text(max_size=2500))
def test_reference_parser_gives_a_reference_or_a_named_error_quickly(line):
    try:
        ref = parse_reference(line)
    except ReviewkitError:
        return
    assert isinstance(ref, Reference) and ref.year is not None


@FUZZ
@given(st.lists(reference_like, max_size=20).map("\n".join))
def test_reference_lists_are_parsed_line_by_line(text):
    items = parse_lines(text)
    assert all(isinstance(i, (Reference, Unparsed)) for i in items)
    assert len(items) == sum(1 for line in text.splitlines() if line.strip())


@FUZZ
@given(st.lists(st.sampled_from(["TY  - JOUR", "AU  - Smith, A.", "PY  - 2020", "TI  - T", "ER  - ", "XX  - y",
                                 "", "junk", "SP  - 1", "EP  - 2", "JO  - J", "DO  - 10.1/x"]), max_size=30)
       .map("\n".join) | st.text(max_size=500))
def test_ris_files_give_records_or_a_named_error(text):
    try:
        items = parse_ris(text)
    except ReviewkitError:
        return
    assert all(isinstance(i, (Reference, Unparsed)) for i in items)


@FUZZ
@given(st.lists(st.sampled_from(["@article{k,", "author = {Smith, A.}", "year = {2020}", "title = {T}", "}", "{",
                                 ",", "@misc{", "journal = J", "@comment{", "%", "\"", "year = 20x"]), max_size=30)
       .map("\n".join) | st.text(max_size=500))
def test_bibtex_files_give_records_or_a_named_error(text):
    try:
        items = parse_bibtex(text)
    except ReviewkitError:
        return
    assert all(isinstance(i, (Reference, Unparsed)) for i in items)


# --- the protocol loader ----------------------------------------------------------------------------------------

def _load(data: bytes) -> Protocol | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "protocol.yml"
        path.write_bytes(data)
        try:
            return load_protocol(path)
        except ReviewkitError:
            return None


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20) | \
    st.dates().map(str) | st.sampled_from(["<placeholder>", "2026/02/30", "REML", "PubMed", "(x", "a\"b"])
yaml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


@FUZZ
@given(st.binary(max_size=2000))
def test_protocol_loader_on_any_bytes(data):
    _load(data)


@FUZZ
@given(yaml_values)
def test_protocol_loader_on_any_yaml_document(value):
    _load(yaml.safe_dump(value, allow_unicode=True).encode())


@FUZZ
@given(st.lists(st.sampled_from(["review", "title", "searches", "aud", "label", "mesh", "text", "dates", "mindate",
                                 "analysis", "hksj", "method", "screening", "intervention"]), min_size=1, max_size=3),
       yaml_values)
def test_protocol_loader_on_the_real_protocol_with_one_value_replaced(path, value):
    data = yaml.safe_load(PROTOCOL_TEXT)
    node = data
    for key in path[:-1]:
        if not isinstance(node, dict):
            break
        node = node.setdefault(key, {})
    if isinstance(node, dict):
        node[path[-1]] = value
    got = _load(yaml.safe_dump(data, allow_unicode=True).encode())
    assert got is None or isinstance(got, Protocol)


@pytest.mark.parametrize("cut", range(0, len(PROTOCOL_TEXT), 97))
def test_protocol_cut_anywhere_loads_or_names_the_problem(cut):
    _load(PROTOCOL_TEXT.encode()[:cut])
