"""Files a researcher expects next to the report.

Included studies as RIS (for EndNote, Zotero, Mendeley) and BibTeX; tables as
CSV and XLSX. The RIS is the standard form: one ``TY``/``ER`` pair per record
and nothing between records, authors ``AU  - Surname, Initials``, the journal
in ``T2`` (its abbreviation in ``J2``), full page numbers, every value on one
line; ``reviewkit verify-refs`` and the other-methods import read it back.
(Figures are written as PNG and SVG by the modules that draw them,
``flow_diagram`` and ``forest``.) Every file is written atomically, so an
interrupted run never leaves a truncated export that looks complete.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import rispy

from .errors import ReviewkitError
from .io import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from .tables import csv_text, xlsx_bytes

# RIS reference types by PubMed publication type; anything else is a journal article.
_RIS_TYPE = {"Book": "BOOK", "Book Chapter": "CHAP"}
# The records table's personal names: "Lastname Initials [Suffix]" (reviewkit.pubmed); anything else
# ("Ketamine Study Group") is a collective name.
_PERSON = re.compile(r"^(?P<last>.+?) (?P<initials>[A-Z]{1,4})(?: (?P<suffix>Jr|Sr|II|III|IV|2nd|3rd))?$")
_ET_AL = re.compile(r"^et[ -]al\.?$", re.I)
_LATEX = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _clean(value) -> str | None:
    """A cell as one line of text (line breaks and runs of spaces become one space), or None for
    missing values (None, NaN, pd.NA, ""). A line break in a title must not start a new RIS tag."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value)) or None
    if pd.isna(value):
        return None
    text = " ".join(str(value).split())
    return text or None


def _list(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [text for text in map(_clean, value) if text]
    text = _clean(value)
    return [text] if text else []


def _authors(value) -> tuple[list[str], bool]:
    """The named authors, and whether the list ends in "et al" (incomplete)."""
    names = _list(value)
    et_al = bool(names) and bool(_ET_AL.match(names[-1]))
    return (names[:-1] if et_al else names), et_al


def ris_name(name: str) -> str:
    """``"Krupitsky EM"`` → ``"Krupitsky, EM"``; ``"Duncan WC Jr"`` → ``"Duncan, WC, Jr"`` (RIS: Last,
    Given, Suffix); a collective name stays as it is."""
    person = _PERSON.match(name)
    if not person:
        return name
    return ", ".join(p for p in (person["last"], person["initials"], person["suffix"]) if p)


def _require(records: pd.DataFrame, columns: set[str], what: str) -> None:
    missing = columns - set(records.columns)
    if missing:
        raise ReviewkitError(f"{what}: records table lacks column(s) {', '.join(sorted(missing))}")


def _pages(pages: str | None) -> tuple[str | None, str | None]:
    """``"40-6"`` (PubMed's MedlinePgn) → ``("40", "46")``: RIS and BibTeX readers expect the full last page."""
    if not pages:
        return None, None
    start, _, end = (p.strip() for p in re.sub(r"[–—]", "-", pages).partition("-"))
    if start.isdigit() and end.isdigit() and len(end) < len(start):
        end = start[: len(start) - len(end)] + end
    return start or None, end or None


class StandardRisWriter(rispy.RisWriter):
    """rispy's writer without the record numbers ("1.", "2.") it puts before each ``TY``."""

    def set_header(self, count: int) -> str:
        return ""


def ris_text(records: pd.DataFrame) -> str:
    """Records (the records-table columns) as standard RIS, one ``TY``…``ER`` entry per row, in row order.

    A list of authors that ends in "et al" is written without it (RIS has no mark for an
    incomplete list).
    """
    _require(records, {"record_id", "title", "authors", "year"}, "RIS export")
    entries = []
    for row in records.to_dict("records"):
        start, end = _pages(_clean(row.get("pages")))
        types = _list(row.get("publication_types"))
        journal, abbreviation = _clean(row.get("journal")), _clean(row.get("journal_iso"))
        entry = {
            "type_of_reference": next((_RIS_TYPE[t] for t in types if t in _RIS_TYPE), "JOUR"),
            "id": _clean(row.get("record_id")),
            "title": _clean(row.get("title")),
            "authors": [ris_name(a) for a in _authors(row.get("authors"))[0]],
            "year": _clean(row.get("year")),
            "secondary_title": journal or abbreviation,
            "alternate_title1": abbreviation if abbreviation != (journal or abbreviation) else None,
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
    return rispy.dumps(entries, implementation=StandardRisWriter)


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
        named, et_al = _authors(row.get("authors"))
        authors = [_bibtex_name(a) for a in named] + (["others"] if et_al and named else [])
        start, end = _pages(_clean(row.get("pages")))
        values = {
            "title": _clean(row.get("title")),
            "journal": _clean(row.get("journal")),
            "year": _clean(row.get("year")),
            "volume": _clean(row.get("volume")),
            "number": _clean(row.get("issue")),
            "pages": "--".join(p for p in (start, end) if p) or None,
            "doi": _clean(row.get("doi")),
            "pmid": _clean(row.get("pmid")),
        }
        # the writer adds the braces around each value; a collective author keeps its own
        fields = [Field("author", " and ".join(authors))] if authors else []
        fields += [Field(k, _bibtex_escape(v)) for k, v in values.items() if v]
        library.add(Entry("article", bibtex_key(row, taken), fields))
    return bibtexparser.write_string(library)


def _bibtex_name(name: str) -> str:
    """``Krupitsky EM`` → ``Krupitsky, E. M.``; ``Duncan WC Jr`` → ``Duncan, Jr, W. C.`` (BibTeX: Last, Jr,
    First); collective names stay whole in braces."""
    person = _PERSON.match(name)
    if not person:
        return "{" + _bibtex_escape(name) + "}"
    given = " ".join(c + "." for c in person["initials"])
    return ", ".join(_bibtex_escape(p) for p in (person["last"], person["suffix"], given) if p)


def _bibtex_escape(text: str) -> str:
    """Braces become parentheses (they would unbalance the entry); backslash, ``~``, ``^`` and
    ``& % $ # _`` become the commands LaTeX prints them with."""
    return re.sub(r"[\\~^&%$#_]", lambda m: _LATEX.get(m.group(), "\\" + m.group()),
                  text.replace("{", "(").replace("}", ")"))


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


def remove_table(folder: str | Path, name: str) -> list[Path]:
    """Remove ``<name>.csv`` and ``<name>.xlsx`` from ``folder`` where present (a table a run found empty,
    so a reused exports folder does not keep an earlier run's); the files removed."""
    gone = [Path(folder) / f"{name}{suffix}" for suffix in (".csv", ".xlsx")]
    gone = [path for path in gone if path.is_file()]
    for path in gone:
        path.unlink()
    return gone


def write_references(records: pd.DataFrame, folder: str | Path, name: str) -> list[Path]:
    """``<name>.ris`` and ``<name>.bib`` in ``folder``."""
    folder = Path(folder)
    return [
        atomic_write_text(folder / f"{name}.ris", ris_text(records)),
        atomic_write_text(folder / f"{name}.bib", bibtex_text(records)),
    ]
