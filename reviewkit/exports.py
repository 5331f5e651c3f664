"""Files a researcher expects next to the report.

Included studies as RIS (for EndNote, Zotero, Mendeley) and BibTeX; tables as
CSV and XLSX. (Figures are written as PNG and SVG by the modules that draw
them, ``flow_diagram`` and ``forest``.) Every file is written atomically, so an
interrupted run never leaves a truncated export that looks complete.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .errors import ReviewkitError
from .io import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from .tables import csv_text, xlsx_bytes

# RIS reference types by PubMed publication type; anything else is a journal article.
_RIS_TYPE = {"Book": "BOOK", "Book Chapter": "CHAP"}


def _clean(value) -> str | None:
    """A cell as text, or None for missing values (None, NaN, pd.NA, "")."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value)) or None
    if pd.isna(value):
        return None
    text = str(value).strip()
    return text or None


def _list(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = _clean(value)
    return [text] if text else []


def _require(records: pd.DataFrame, columns: set[str], what: str) -> None:
    missing = columns - set(records.columns)
    if missing:
        raise ReviewkitError(f"{what}: records table lacks column(s) {', '.join(sorted(missing))}")


def _pages(pages: str | None) -> tuple[str | None, str | None]:
    if not pages:
        return None, None
    start, _, end = pages.partition("-")
    return start or None, end or None


def ris_text(records: pd.DataFrame) -> str:
    """Records (the records-table columns) as RIS, one entry per row, in row order."""
    import rispy

    _require(records, {"record_id", "title", "authors", "year"}, "RIS export")
    entries = []
    for row in records.to_dict("records"):
        start, end = _pages(_clean(row.get("pages")))
        types = _list(row.get("publication_types"))
        entry = {
            "type_of_reference": next((_RIS_TYPE[t] for t in types if t in _RIS_TYPE), "JOUR"),
            "id": _clean(row.get("record_id")),
            "title": _clean(row.get("title")),
            "authors": _list(row.get("authors")),
            "year": _clean(row.get("year")),
            "journal_name": _clean(row.get("journal")),
            "alternate_title3": _clean(row.get("journal_iso")),
            "volume": _clean(row.get("volume")),
            "number": _clean(row.get("issue")),
            "start_page": start,
            "end_page": end,
            "doi": _clean(row.get("doi")),
            "accession_number": _clean(row.get("pmid")),
            "language": _clean(row.get("language")),
            "keywords": _list(row.get("mesh_terms")),
            "abstract": _clean(row.get("abstract")),
        }
        if entry["accession_number"]:
            entry["urls"] = [f"https://pubmed.ncbi.nlm.nih.gov/{entry['accession_number']}/"]
        entries.append({k: v for k, v in entry.items() if v})
    return rispy.dumps(entries)


def bibtex_key(row: dict, taken: set[str]) -> str:
    """``surname<year>`` plus ``a``, ``b``... when two studies would share a key."""
    names = _list(row.get("authors"))
    surname = _clean(row.get("first_author")) or (names[0] if names else "anon")
    base = re.sub(r"[^a-z]", "", surname.split()[0].lower()) or "anon"
    base += _clean(row.get("year")) or "nd"
    key, n = base, 0
    while key in taken:
        key = base + chr(ord("a") + n)
        n += 1
    taken.add(key)
    return key


def bibtex_text(records: pd.DataFrame) -> str:
    """Records as BibTeX ``@article`` entries; keys are unique within the file."""
    import bibtexparser
    from bibtexparser.model import Entry, Field

    _require(records, {"title", "authors", "year"}, "BibTeX export")
    library = bibtexparser.Library()
    taken: set[str] = set()
    for row in records.to_dict("records"):
        authors = [_bibtex_name(a) for a in _list(row.get("authors"))]
        values = {
            "author": " and ".join(authors) or None,
            "title": _clean(row.get("title")),
            "journal": _clean(row.get("journal")),
            "year": _clean(row.get("year")),
            "volume": _clean(row.get("volume")),
            "number": _clean(row.get("issue")),
            "pages": (_clean(row.get("pages")) or "").replace("-", "--") or None,
            "doi": _clean(row.get("doi")),
            "pmid": _clean(row.get("pmid")),
        }
        fields = [Field(k, _bibtex_escape(v)) for k, v in values.items() if v]  # the writer adds the braces
        library.add(Entry("article", bibtex_key(row, taken), fields))
    return bibtexparser.write_string(library)


def _bibtex_name(name: str) -> str:
    """``Krupitsky EM`` -> ``Krupitsky, E. M.``; collective names stay whole in braces."""
    parts = name.split()
    if len(parts) >= 2 and parts[-1].isupper() and len(parts[-1]) <= 4:
        return f"{' '.join(parts[:-1])}, {' '.join(c + '.' for c in parts[-1])}"
    return "{" + name + "}"


def _bibtex_escape(text: str) -> str:
    return re.sub(r"([&%$#_])", r"\\\1", text.replace("{", "(").replace("}", ")"))


def flat_table(table: pd.DataFrame) -> pd.DataFrame:
    """List cells joined with "; " so CSV and spreadsheet users see readable text."""
    out = table.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (list, tuple))).any():
            out[col] = out[col].map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    return out


def write_table(table: pd.DataFrame, folder: str | Path, name: str) -> list[Path]:
    """``<name>.csv`` and ``<name>.xlsx`` in ``folder``; text a spreadsheet would run as a formula
    (a title such as ``=HYPERLINK(...)``) is written as text (``reviewkit.tables``)."""
    folder = Path(folder)
    remove_stale_temporaries(folder)
    flat = flat_table(table)
    return [
        atomic_write_text(folder / f"{name}.csv", csv_text(flat)),
        atomic_write_bytes(folder / f"{name}.xlsx", xlsx_bytes(flat, name[:31])),
    ]


def write_references(records: pd.DataFrame, folder: str | Path, name: str) -> list[Path]:
    """``<name>.ris`` and ``<name>.bib`` in ``folder``."""
    folder = Path(folder)
    return [
        atomic_write_text(folder / f"{name}.ris", ris_text(records)),
        atomic_write_text(folder / f"{name}.bib", bibtex_text(records)),
    ]
