"""Import records identified by other methods (PRISMA 2020's second column).

Citation searching, websites or organisations give reference lists, not
PubMed searches; they arrive as RIS (rispy) or CSV files and become rows of the
records table (docs/architecture.md) with ``source`` set to the method and
``record_id`` ``<PREFIX>:<id>``. The id is the file's own (RIS ``ID`` tag, CSV
``id`` column) when it has one, else derived from first author, year and title,
so a re-import of the same reference gives the same id and its screening
decisions stay attached.

A reference found while working on one of the review's searches can say which
search it bears on: RIS custom field ``C1`` (as ``reviewkit.sample`` writes it)
or a CSV ``searches`` column, ``;``-separated search keys, kept in
``searches`` so PRISMA counts per search include it. RIS authors written
``Last, Initials`` become the records table's ``Last Initials``.

These files come with a snapshot and may be hostile: a file or folder that is
a symbolic link is refused, text fields are one line each (a newline in a
title cannot forge a record in a RIS export), and messages quote the file
only in short, redacted excerpts.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import rispy

from .errors import ReviewkitError, UnsafePathError
from .io import read_bytes
from .redact import excerpt

#: record-id prefix per other method (PRISMA 2020 names).
METHOD_PREFIXES = {"Citation searching": "CIT", "Websites": "WEB", "Organisations": "ORG"}

# Columns of the records table this importer fills; the rest stay empty
# (other methods carry no MeSH indexing).
_TEXT_COLUMNS = ["pmid", "doi", "pmcid", "title", "abstract", "journal", "journal_iso", "volume", "issue",
                 "pages", "language"]
# A reference list is small; a larger file is not one.
MAX_FILE_BYTES = 64 * 2**20


def _line(value) -> str:
    """Text as one line: newlines, tabs and runs of spaces become one space."""
    return " ".join(str(value).split())


def _slug(text: str, words: int = 6) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split()[:words])


def _clean_doi(doi: str | None) -> str | None:
    if not doi:
        return None
    doi = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", doi.strip(), flags=re.I).lower()
    return doi or None


def _year(value, where: str) -> int | None:
    if value is None or str(value).strip() == "" or (isinstance(value, float) and pd.isna(value)):
        return None
    match = re.match(r"\s*(\d{4})", str(value))
    if not match:
        raise ReviewkitError(f"{where}: year {excerpt(value)} is not a four-digit year")
    return int(match.group(1))


def _row(entry: dict, method: str, where: str, known_searches: set[str] | None) -> dict:
    title = _line(entry.get("title") or "")
    if not title:
        raise ReviewkitError(f"{where}: reference has no title")
    authors = [_line(str(a).replace(",", " ")) for a in entry.get("authors") or [] if a and str(a).strip()]
    year = _year(entry.get("year"), where)
    own_id = _line(entry.get("id") or "")
    prefix = METHOD_PREFIXES.get(method, _slug(method, 1).upper() or "OTH")
    local = own_id.split(":", 1)[1] if own_id.upper().startswith(prefix + ":") else own_id
    if not local:
        surname = authors[0].split()[0] if authors else "anon"
        local = _slug(f"{surname} {year or 'nd'} {title}", 8)
    searches = [s for s in entry.get("searches") or [] if s]
    if known_searches is not None:
        unknown = [s for s in searches if s not in known_searches]
        if unknown:
            raise ReviewkitError(f"{where}: unknown search key(s) {excerpt(', '.join(unknown))}; "
                                 f"known: {', '.join(sorted(known_searches))}")
    row: dict[str, object] = {c: (_line(entry[c]) or None) if entry.get(c) not in (None, "") else None
                              for c in _TEXT_COLUMNS}
    row.update(record_id=f"{prefix}:{local}", source=method, doi=_clean_doi(str(row["doi"] or "")),
               title=title, abstract=row["abstract"] or "", authors=authors,
               first_author=authors[0] if authors else None, year=year,
               publication_types=list(entry.get("publication_types") or []), mesh_terms=[],
               is_human=False, is_animal=False, searches=searches)
    return row


def _text_of(path: Path, kind: str) -> str:
    """The file's text, never through a symbolic link (the file's or its folder's)."""
    if path.parent.is_symlink():
        raise UnsafePathError(f"{path.parent}: a symbolic link; refused (reviewkit never follows links here)")
    try:
        return read_bytes(path, MAX_FILE_BYTES).decode("utf-8-sig")
    except FileNotFoundError:
        raise ReviewkitError(f"{path}: {kind} file not found") from None
    except UnicodeDecodeError as exc:
        raise ReviewkitError(f"{path}: the {kind} file is not UTF-8 text (byte {exc.start})") from None


def _from_ris(path: Path) -> list[dict]:
    text = _text_of(path, "RIS")
    try:
        entries = rispy.loads(text)
    except Exception as exc:  # rispy raises plain IOError/ValueError subclasses that quote the file
        raise ReviewkitError(f"{path}: cannot read RIS file ({excerpt(exc)})") from None
    out = []
    for e in entries:
        pages = "-".join(p for p in (e.get("start_page"), e.get("end_page")) if p) or None
        out.append({
            "id": e.get("id"), "title": e.get("title") or e.get("primary_title"),
            "authors": e.get("authors") or e.get("first_authors"),
            "year": e.get("year") or e.get("publication_year"), "doi": e.get("doi"),
            "journal": e.get("secondary_title") or e.get("journal_name") or e.get("alternate_title3"),
            "journal_iso": e.get("alternate_title1") or e.get("alternate_title2"),
            "volume": e.get("volume"), "issue": e.get("number"), "pages": pages,
            "abstract": e.get("abstract"), "language": e.get("language"),
            "pmid": e.get("accession_number"),
            "publication_types": [e["type_of_work"]] if e.get("type_of_work") else [],
            "searches": [k.strip() for k in (e.get("custom1") or "").split(";")],
        })
    return out


def _from_csv(path: Path) -> list[dict]:
    text = _text_of(path, "CSV")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReviewkitError(f"{path}: cannot read CSV file ({excerpt(exc)})") from None
    if "title" not in frame.columns:
        raise ReviewkitError(f"{path}: CSV has no 'title' column (its header begins "
                             f"{excerpt(', '.join(map(str, frame.columns)), 40)})")

    def split(value: str, sep: str) -> list[str]:
        return [p.strip() for p in value.split(sep) if p.strip()]

    return [{**row, "authors": split(row.get("authors", ""), ";"), "searches": split(row.get("searches", ""), ";"),
             "publication_types": split(row.get("publication_types", ""), ";")}
            for row in frame.to_dict("records")]


def read_other_methods(path: str | Path, method: str = "Citation searching",
                       known_searches: set[str] | None = None) -> pd.DataFrame:
    """Records from one RIS (``.ris``) or CSV (``.csv``) file as records-table rows.

    A duplicated record id within the file, a missing title or an unknown
    search key is an error naming the file and the reference (1-based).
    """
    path = Path(path)
    reader = {".ris": _from_ris, ".csv": _from_csv}.get(path.suffix.lower())
    if reader is None:
        raise ReviewkitError(f"{path}: other-method records must be .ris or .csv")
    rows = [_row(entry, method, f"{path}, reference {n}", known_searches)
            for n, entry in enumerate(reader(path), 1)]
    frame = pd.DataFrame(rows, dtype=object)
    if frame.empty:
        return frame
    dup = frame["record_id"][frame["record_id"].duplicated()]
    if not dup.empty:
        n = int(dup.index[0]) + 1
        raise ReviewkitError(f"{path}, reference {n}: record id {excerpt(dup.iloc[0])} appears twice in the file")
    frame["year"] = frame["year"].astype("Int64")
    return frame


def read_other_methods_folder(folder: str | Path, method: str = "Citation searching",
                              known_searches: set[str] | None = None) -> pd.DataFrame:
    """All ``*.ris`` and ``*.csv`` files of a folder, in name order (empty table if none)."""
    folder = Path(folder)
    if folder.is_symlink():
        raise UnsafePathError(f"{folder}: a symbolic link; refused (reviewkit never follows links here)")
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in {".ris", ".csv"}) if folder.is_dir() else []
    frames = [f for f in (read_other_methods(p, method, known_searches) for p in files) if not f.empty]
    if not frames:
        return pd.DataFrame()
    combined = pd.concat(frames, ignore_index=True)
    dup = combined["record_id"][combined["record_id"].duplicated()]
    if not dup.empty:
        raise ReviewkitError(f"{folder}: record id {excerpt(dup.iloc[0])} appears in more than one file")
    return combined
