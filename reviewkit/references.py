"""Printed references → structured ``Reference`` objects.

Three inputs are understood:

* printed lines, APA-like as in the clinic's article
  (``Berman, R. M., … (2020). “Title.” Journal, 57(2), 227-234.``, curly or
  straight quotes, title quoted or not) or Vancouver/NLM
  (``Krupitsky EM, Burakov AM, et al. Title. J Psychopharmacol. 2011;25(2):280-5.``);
  a leading bullet or number (``•``, ``-``, ``1.``, ``[1]``) is ignored;
* BibTeX (via ``bibtexparser``) and RIS (via ``rispy``) files.

Authors come out as in the records table: ``"Lastname Initials"``
(``"Berman RM"``). A line that cannot be read becomes an ``Unparsed`` item
naming the line and the reason, so one bad line never stops the rest.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bibtexparser
import rispy

from .errors import ReviewkitError
from .redact import excerpt


class ReferenceParseError(ReviewkitError):
    """A reference (or a whole reference file) could not be read."""


@dataclass(frozen=True)
class Reference:
    """One cited work, as the citing text gives it (nothing corrected)."""

    text: str                      # the reference as given (one line, or the BibTeX/RIS entry rendered)
    where: str                     # e.g. "references.txt, line 3"
    authors: tuple[str, ...]       # "Lastname Initials", in printed order
    et_al: bool                    # the printed list stops with "et al."
    year: int | None
    title: str | None
    journal: str | None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None       # as printed, e.g. "227-234", "480", "280-5"
    doi: str | None = None

    @property
    def first_author(self) -> str | None:
        return self.authors[0] if self.authors else None


@dataclass(frozen=True)
class Unparsed:
    """An input item that is not a readable reference, and why."""

    text: str
    where: str
    message: str


_MARKER = re.compile(r"^\s*(?:[•·▪‣◦*\-–]|\d{1,3}[.)]|\[\d{1,3}\])\s+")
_QUOTES = "“”\"‘’'„«»"
_DOI = re.compile(r"(?:https?://(?:dx\.)?doi\.org/|doi:\s*)(10\.\S+?)[.,;]?(?=\s|$)", re.I)

_SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "2nd", "3rd"}
# Words that mark a collective author ("NIDA Clinical Trials Network"), which has no surname.
_COLLECTIVE_WORDS = {"group", "study", "consortium", "committee", "collaboration", "collaborative", "network",
                     "investigators", "association", "society", "trial", "trials", "team", "council", "panel",
                     "organization", "organisation", "institute", "foundation", "centre", "center"}
_INITIALS_ONLY = re.compile(r"^[A-Z]{1,4}$")  # "EM" in "Krupitsky EM": initials run together

_APA = re.compile(r"^(?P<authors>.+?)\s*\((?P<year>\d{4})[a-z]?\)\.?\s+(?P<rest>.+)$")
# Journal, 57(2), 227-234.   Journal, 11, 480.   Journal, 118.
_APA_SOURCE = re.compile(
    r"^(?P<journal>[^,]+(?:,[^,\d][^,]*)*?),\s*(?P<volume>[\w.]+)\s*(?:\((?P<issue>[^)]+)\))?"
    r"(?:,\s*(?P<pages>[A-Za-z]?\d[\w]*(?:\s*[-–—]\s*[A-Za-z]?\d[\w]*)?))?\s*\.?\s*$"
)
# "Surname, Initials" pairs. Linear time: a match starts only where a name can (the start, or after "," or
# "&"), and each initial starts with a capital, so where one ends is never in doubt; the separators are one
# class ([\s-]*). The former "\s*-?\s*" could split a run of spaces in many ways and backtracked
# exponentially ("Smith, A  A  A ... x": minutes for 16 initials).
_APA_AUTHOR = re.compile(r"(?<![^,&])([^,&]+?),\s*((?:[A-Z][a-z]?\.?[\s-]*)+)(?:,|&|$)")
# A printed reference is a few hundred characters; the APA and Vancouver patterns are at worst quadratic in
# a line's length, so lines are capped and a reference file takes time linear in its size.
MAX_REFERENCE_CHARS = 2000

_VANCOUVER = re.compile(
    r"^(?P<authors>[^.]+?)\.\s+(?P<title>.+?[.?!])\s+(?P<journal>[^;]+?)\.?\s+"
    r"(?P<year>\d{4})(?:\s[^;:]*)?;\s*(?P<volume>[^(:;\s]*)\s*(?:\((?P<issue>[^)]*)\))?"
    r"(?::\s*(?P<pages>[A-Za-z]?\d[\w]*(?:\s*[-–]\s*[A-Za-z]?\d[\w]*)?))?\.?\s*$"
)


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = re.sub(r"\s+", " ", text).strip().strip(_QUOTES).strip()
    return text.rstrip(".").strip() or None


def _initials(given: str) -> str:
    """"R. M." / "Evgeny M." / "J.-P." / "EM" → "RM" / "EM" / "JP" / "EM" (capitals run together are initials)."""
    parts = [part for part in re.split(r"[\s.\-]+", given) if part]
    return "".join(part if _INITIALS_ONLY.match(part) else part[0].upper() for part in parts)


def _apa_authors(text: str) -> tuple[tuple[str, ...], bool]:
    et_al = bool(re.search(r"\bet al\.?", text))
    text = re.sub(r",?\s*\bet al\.?", "", text)
    text = re.sub(r",?\s*(?:&|\band\b)\s*", ", ", text)
    authors = tuple(f"{surname.strip()} {_initials(given)}" for surname, given in _APA_AUTHOR.findall(text + ","))
    return authors, et_al


def _vancouver_authors(text: str) -> tuple[tuple[str, ...], bool]:
    et_al = bool(re.search(r"\bet al\b", text))
    parts = [p.strip() for p in re.sub(r",?\s*\bet al\b", "", text).split(",")]
    return tuple(p for p in parts if p), et_al


def parse_reference(text: str, where: str = "reference") -> Reference:
    """Parse one printed reference (APA-like or Vancouver).

    Raises ``ReferenceParseError`` naming ``where`` when the line fits neither style.
    """
    if len(text) > MAX_REFERENCE_CHARS:
        raise ReferenceParseError(f"{where}: {len(text)} characters, more than one printed reference has "
                                  f"({MAX_REFERENCE_CHARS} at most): {excerpt(text)}")
    line = _MARKER.sub("", text.strip(), count=1).strip()
    if not line:
        raise ReferenceParseError(f"{where}: empty reference")
    doi_match = _DOI.search(line)
    doi = doi_match.group(1).lower() if doi_match else None
    body = _DOI.sub("", line).strip()

    apa = _APA.match(body)
    if apa:
        authors, et_al = _apa_authors(apa["authors"])
        rest = apa["rest"].strip()
        if rest[:1] in _QUOTES:
            closing = re.search(rf"[{_QUOTES}]", rest[1:])
            if not closing:
                raise ReferenceParseError(f"{where}: the title's quotation mark is never closed: {excerpt(line, 300)}")
            title, source = rest[1 : closing.start() + 1], rest[closing.end() + 1 :]
        else:
            title, _, source = rest.partition(". ")
            if not source and title.endswith("?"):
                title, source = rest.split("? ", 1) if "? " in rest else (rest, "")
        src = _APA_SOURCE.match(source.strip().lstrip(".").strip())
        if not authors or not src:
            raise ReferenceParseError(
                f"{where}: looks like an APA reference but its "
                f"{'authors' if not authors else 'journal, volume and pages'} cannot be read: {excerpt(line, 300)}"
            )
        return Reference(
            text=line, where=where, authors=authors, et_al=et_al, year=int(apa["year"]),
            title=_clean(title), journal=_clean(src["journal"]), volume=_clean(src["volume"]),
            issue=_clean(src["issue"]), pages=_clean(src["pages"]), doi=doi,
        )

    van = _VANCOUVER.match(body)
    if van:
        authors, et_al = _vancouver_authors(van["authors"])
        return Reference(
            text=line, where=where, authors=authors, et_al=et_al, year=int(van["year"]),
            title=_clean(van["title"]), journal=_clean(van["journal"]), volume=_clean(van["volume"]),
            issue=_clean(van["issue"]), pages=_clean(van["pages"]), doi=doi,
        )
    raise ReferenceParseError(
        f"{where}: not a reference in APA style (Authors (Year). Title. Journal, volume(issue), pages) "
        f"or Vancouver style (Authors. Title. Journal. Year;volume(issue):pages): {excerpt(line, 300)}"
    )


def parse_lines(text: str, source: str = "input") -> list[Reference | Unparsed]:
    """One reference per non-blank line, in order; bad lines become ``Unparsed``."""
    items: list[Reference | Unparsed] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}, line {lineno}"
        try:
            items.append(parse_reference(line, where))
        except ReferenceParseError as exc:
            items.append(Unparsed(text=line.strip(), where=where, message=str(exc)))
    return items


def _person(last: str, given: str, suffix: str = "") -> str:
    """The records table's form of a personal name: ``"Lastname Initials [Suffix]"``."""
    return " ".join(p for p in (last.strip().strip("{}"), _initials(given), suffix.strip().rstrip(".")) if p)


def _is_et_al(name: str) -> bool:
    return name.strip().rstrip(".").lower() in {"et al", "et-al", "others"}


def _is_suffix(token: str) -> bool:
    return token.strip().rstrip(".").lower() in _SUFFIXES


def _written_name(name: str, comma_order: str) -> str:
    """One author as a reference file writes it → ``"Lastname Initials [Suffix]"``.

    ``comma_order`` says what follows the surname when there are two commas: RIS writes
    ``Last, Given, Suffix``, BibTeX ``Last, Jr, Given``. Without a comma a name is either already
    in the records table's form (``"Dakwar E"``, ``"Duncan WC Jr"``: initials in capitals last) or
    written given names first (``"Elias Dakwar"``).
    """
    name = " ".join(name.strip().strip("{}").split())
    if "," in name:
        parts = [p.strip() for p in name.split(",")]
        last, rest = parts[0], [p for p in parts[1:] if p]
        if len(rest) >= 2:
            given, suffix = (rest[0], rest[1]) if comma_order == "given, suffix" else (rest[1], rest[0])
            if _is_suffix(given) and not _is_suffix(suffix):  # written in the other order
                given, suffix = suffix, given
        elif rest and _is_suffix(rest[0]):
            given, suffix = "", rest[0]
        else:
            given, suffix = (rest[0] if rest else ""), ""
        return _person(last, given, suffix)
    tokens = name.split()
    if any(t.lower() in _COLLECTIVE_WORDS for t in tokens):
        return name  # "Ketamine Study Group": a collective author, kept whole
    suffix = tokens.pop() if len(tokens) > 2 and _is_suffix(tokens[-1]) else ""
    if len(tokens) >= 2 and _INITIALS_ONLY.match(tokens[-1]):
        return " ".join([*tokens, suffix]).strip()
    if len(tokens) == 1:
        return _person(tokens[0], "", suffix)
    return _person(tokens[-1], " ".join(tokens[:-1]), suffix)


def _bib_name(name: str) -> str:
    """BibTeX "Last, First M.", "Last, Jr, First" or "First M. Last" → "Last FM"."""
    return _written_name(name, comma_order="suffix, given")


def _ris_name(name: str) -> str:
    """RIS "Last, First M.", "Last, F.M., Jr", "Last FM" (no comma) or "First M. Last" → "Last FM"."""
    return _written_name(name, comma_order="given, suffix")


def parse_bibtex(text: str, source: str = "input.bib") -> list[Reference | Unparsed]:
    """BibTeX entries in file order; broken blocks become ``Unparsed`` naming their line."""
    logging.getLogger("bibtexparser").setLevel(logging.ERROR)  # failures are reported as Unparsed instead
    library = bibtexparser.parse_string(text)
    blocks: list[Any] = sorted([*library.entries, *library.failed_blocks], key=lambda b: b.start_line or 0)
    items: list[Reference | Unparsed] = []
    for block in blocks:
        where = f"{source}, line {(block.start_line or 0) + 1}"
        if block in library.failed_blocks:
            why = str(block.error) or type(block.error).__name__
            items.append(Unparsed(block.raw.strip(), where, f"{where}: BibTeX block cannot be read ({why})"))
            continue
        fields = {k.lower(): re.sub(r"[{}]", "", str(f.value)) for k, f in block.fields_dict.items()}
        names = [n for n in re.split(r"\s+and\s+", fields.get("author", "")) if n.strip()]
        et_al = bool(names) and names[-1].strip().lower() == "others"
        year = fields.get("year", "").strip()
        if not names or not fields.get("title") or (year and not re.fullmatch(r"\d{4}", year)):
            items.append(Unparsed(block.raw.strip(), where, f"{where}: BibTeX entry {block.key!r} needs author and "
                                                            "title, and a four-digit year if it gives one"))
            continue
        items.append(Reference(
            text=block.raw.strip(), where=where,
            authors=tuple(_bib_name(n) for n in names if n.strip().lower() != "others"), et_al=et_al,
            year=int(year) if year else None, title=_clean(fields.get("title")), journal=_clean(fields.get("journal")),
            volume=_clean(fields.get("volume")), issue=_clean(fields.get("number")),
            pages=_clean(fields.get("pages", "").replace("--", "-")), doi=_clean(fields.get("doi", "").lower()),
        ))
    return items


def parse_ris(text: str, source: str = "input.ris") -> list[Reference | Unparsed]:
    """RIS records in file order; a record without author or title, or with a year that is not one,
    becomes ``Unparsed``. A record without a year keeps ``year`` None (compared on its other fields).
    Authors may be written ``Last, Given`` (the standard) or ``Last Initials`` (PubMed's form); a last
    ``AU  - et al`` marks the list as incomplete. Numbered records (``1.`` before ``TY``) are read too."""
    try:
        entries = rispy.loads(text)
    except Exception as exc:  # rispy raises plain IOError/ValueError subclasses on malformed files
        raise ReferenceParseError(f"{source}: not a readable RIS file ({exc})") from None
    items: list[Reference | Unparsed] = []
    for index, entry in enumerate(entries, 1):
        where = f"{source}, record {index}"
        names = [n for n in entry.get("authors") or entry.get("first_authors") or [] if n.strip()]
        et_al = bool(names) and _is_et_al(names[-1])
        names = names[:-1] if et_al else names
        year = str(entry.get("year") or entry.get("publication_year") or "").strip()[:4]
        title = entry.get("title") or entry.get("primary_title")
        rendered = "; ".join(names) + (", et al" if et_al else "") + f" ({year or 'no year'}). {title or ''}"
        if not names or not title or (year and not year.isdigit()):
            items.append(Unparsed(rendered, where, f"{where}: RIS record needs AU and TI, and a four-digit PY if it "
                                                   "gives one"))
            continue
        start, end = entry.get("start_page"), entry.get("end_page")
        pages = f"{start}-{end}" if start and end else start
        journal = next((entry[k] for k in ("secondary_title", "journal_name", "alternate_title3",
                                            "alternate_title2", "alternate_title1") if entry.get(k)), None)
        items.append(Reference(
            text=rendered, where=where, authors=tuple(_ris_name(n) for n in names), et_al=et_al,
            year=int(year) if year else None, title=_clean(title), journal=_clean(journal), volume=_clean(entry.get("volume")),
            issue=_clean(entry.get("number")), pages=_clean(pages), doi=_clean((entry.get("doi") or "").lower()),
        ))
    return items


def read_references(path: str | Path) -> list[Reference | Unparsed]:
    """Read a reference file: ``.bib`` as BibTeX, ``.ris`` as RIS, anything else as one printed reference per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReferenceParseError(f"{path}: cannot read reference file ({exc})") from None
    suffix = path.suffix.lower()
    if suffix == ".bib":
        return parse_bibtex(text, str(path))
    if suffix == ".ris":
        return parse_ris(text, str(path))
    return parse_lines(text, str(path))
