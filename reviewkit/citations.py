"""Does a cited reference exist as cited? One scoring rule, two candidate sources.

Candidates are records in the records-table columns (docs/architecture.md).
They come from a *candidate source*:

* ``LocalRecords(df)``: offline, every record of the local store (the
  snapshot's records, including records an earlier live check looked up);
* ``PubMedLookup(client)``: live, ECitMatch (journal|year|volume|first
  page|author) plus ESearch field searches by author and year and by title
  words, then EFetch of every PMID found.

* ``CrossrefLookup(client)``: Crossref, by DOI (``/works/{doi}``), then by the
  printed reference (``query.bibliographic``); live and recorded, or replayed
  from what a live check recorded.

Whatever the source, ``compare`` scores each candidate field by field and
``check_reference`` decides. ECitMatch's PMID is only a candidate: it is
checked like any other, so a wrong PMID is never taken on trust.

A ``SourceChain`` asks its sources in turn (PubMed or the local records first,
then Crossref) while the reference is not found, so a real paper in a journal
PubMed does not index is not "not found". Each verdict says which sources were
searched (``sources_searched``) and which one found the record (``found_in``).
It then asks whether the record is retracted (``reviewkit.retractions``: PubMed's
publication types and comment/correction links, Crossref's notices whose
``update-to`` names the DOI); a retracted reference is ``retracted``, never
``verified``, whatever its fields.

Verdicts:

* ``verified``: a record is identified and authors, year, title, journal,
  volume, issue and pages all agree (case, punctuation, journal
  abbreviations and abbreviated page ranges such as ``280-5`` are trivial);
* ``exists_with_errors``: one record is clearly the one meant (its title, its
  DOI, or its journal + volume + first page, together with an author), but
  named fields differ (``field_errors``);
* ``ambiguous``: several distinct records are plausible; all are listed;
* ``not_found``: no record is identified; the nearest records are listed;
* ``retracted``: a retraction notice names the cited work (the record meant, if
  identified, is kept in ``match`` with its field errors).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from rapidfuzz import fuzz

from .errors import ReviewkitError, SnapshotError
from .references import Reference
from .retractions import UNKNOWN, RetractionStatus, combine, from_crossref, of_record
from .text import fold as fold_text

log = logging.getLogger(__name__)

VERDICTS = ("verified", "exists_with_errors", "not_found", "ambiguous", "retracted")
TITLE_MATCH = 0.90     # normalised title similarity at or above this is "the same title"
NEAREST_FLOOR = 0.25   # a not-found reference lists records scoring at least this
MAX_LISTED = 3         # nearest records listed for not_found

_JOURNAL_STOP = {"the", "of", "and", "in", "for", "on", "&"}
_NAME_SUFFIX = {"jr", "sr", "ii", "iii", "iv"}


# --------------------------------------------------------------------------- normalisation


@lru_cache(maxsize=1 << 16)
def _fold_str(text: str) -> str:
    return fold_text(text)


def fold(text: object) -> str:
    """``reviewkit.text.fold``, remembered for text: a reference's fields, and the names and journals of
    the records it is compared with, come back thousands of times when a store holds 100,000 records."""
    return _fold_str(text) if isinstance(text, str) else fold_text(text)


@lru_cache(maxsize=1 << 16)  # the same names, again and again (see ``fold``)
def _name_parts(name: str) -> tuple[str, str]:
    """"Duncan WC Jr" → ("duncan", "wc"); "de Bruin NM" → ("de bruin", "nm")."""
    tokens = [t for t in str(name).replace(".", " ").split() if fold(t) not in _NAME_SUFFIX]
    if len(tokens) > 1 and tokens[-1].isupper() and len(tokens[-1]) <= 4:
        return fold(" ".join(tokens[:-1])), tokens[-1].lower()
    return fold(" ".join(tokens)), ""


def _same_person(printed: str, recorded: str) -> bool:
    """Same surname, and the first initials agree where both are given."""
    (s1, i1), (s2, i2) = _name_parts(printed), _name_parts(recorded)
    return bool(s1) and s1 == s2 and (not i1 or not i2 or i1[0] == i2[0])


def title_similarity(a: object, b: object) -> float:
    a, b = fold(a), fold(b)
    return fuzz.ratio(a, b) / 100 if a and b else 0.0


def _journal_words(name: object) -> list[str]:
    without_place = re.sub(r"\([^)]*\)", " ", str(name or ""))  # "Psychopharmacology (Berl)", "(Oxford)"
    return [w for w in fold(without_place).split() if w not in _JOURNAL_STOP]


def journal_matches(printed: object, *recorded: object) -> bool:
    """Equal after folding, or one is a word-by-word abbreviation of the other ("J Subst Abuse Treat")."""
    p = _journal_words(printed)
    for name in recorded:
        r = _journal_words(name)
        if p and r and len(p) == len(r) and all(x.startswith(y) or y.startswith(x) for x, y in zip(p, r)):
            return True
    return False


def _page_range(pages: object) -> tuple[str, str | None]:
    """"280-5" → ("280", "285"); "107866" → ("107866", None); "e14129" stays as is."""
    text = re.sub(r"\s+", "", str(pages or "")).replace("–", "-").replace("—", "-").lower()
    first, _, last = text.partition("-")
    if first.isdigit() and last.isdigit() and len(last) < len(first):
        last = first[: len(first) - len(last)] + last
    return first, last or None


def pages_match(printed: object, recorded: object) -> bool:
    (f1, l1), (f2, l2) = _page_range(printed), _page_range(recorded)
    return f1 == f2 and (l1 is None or l2 is None or l1 == l2)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and str(value).strip() != ""


# --------------------------------------------------------------------------- the one scoring rule


@dataclass(frozen=True)
class Match:
    """One candidate record scored against one reference."""

    record_id: str
    pmid: str | None
    doi: str | None
    first_author: str | None
    year: int | None
    title: str
    journal: str | None
    volume: str | None
    issue: str | None
    pages: str | None
    score: float                    # 0..1, for ranking only
    identified: bool                # clearly the work the reference means
    identified_by: str | None       # "title", "doi" or "journal, volume and first page" (each with an author)
    field_errors: tuple[str, ...]   # printed fields that differ from the record
    source: str | None = None       # where the record comes from ("PubMed", "Crossref", "Citation searching")

    def label(self) -> str:
        ident = f"PMID {self.pmid}" if self.pmid else (f"doi:{self.doi}" if self.doi else self.record_id)
        where = ", ".join(str(x) for x in (self.journal, self.year) if _present(x))
        return f"{self.first_author or 'no author'}: {self.title} ({where}) [{ident}]"

    def as_dict(self) -> dict:
        return {"record_id": self.record_id, "pmid": self.pmid, "doi": self.doi,
                "first_author": self.first_author, "year": self.year, "title": self.title,
                "journal": self.journal, "volume": self.volume, "issue": self.issue, "pages": self.pages,
                "score": round(self.score, 3), "identified_by": self.identified_by,
                "field_errors": list(self.field_errors), "source": self.source}


def _value(record: Mapping, key: str):
    value = record.get(key)
    return value if _present(value) else None


def _record_authors(listed: Any) -> tuple[list[str], bool]:
    """A record's named authors, and whether its list ends in "et al" (the record shows only the first few)."""
    authors = [] if listed is None or isinstance(listed, (str, float)) else [str(a) for a in listed]
    incomplete = bool(authors) and fold(authors[-1]) == "et al"
    return (authors[:-1] if incomplete else authors), incomplete


def compare(ref: Reference, record: Mapping) -> Match:
    """Score one record against one reference, field by field (the only rule, live or offline).

    Authors are compared on the names both lists give: a citation that lists more authors than a
    record ending in "et al" is checked only on the authors the record lists.
    """
    authors, record_et_al = _record_authors(record.get("authors"))
    rec_year = int(record["year"]) if _present(record.get("year")) else None
    title_sim = title_similarity(ref.title, record.get("title"))
    first_ok = bool(ref.authors and authors and _same_person(ref.authors[0], authors[0]))
    surnames = {_name_parts(a)[0] for a in authors}
    author_overlap = any(_name_parts(a)[0] in surnames for a in ref.authors)
    doi_ok = bool(ref.doi and _value(record, "doi") and ref.doi.lower() == str(record["doi"]).lower())
    journal_ok = journal_matches(ref.journal, record.get("journal"), record.get("journal_iso"))
    volume_ok = fold(ref.volume) == fold(record.get("volume")) and bool(ref.volume)
    first_page_ok = bool(ref.pages and _value(record, "pages")) and \
        _page_range(ref.pages)[0] == _page_range(record["pages"])[0]

    identified_by = None
    if author_overlap:
        if title_sim >= TITLE_MATCH:
            identified_by = "title"
        elif doi_ok:
            identified_by = "doi"
        elif journal_ok and volume_ok and first_page_ok:
            identified_by = "journal, volume and first page"

    errors: list[str] = []
    if identified_by:
        listed_ok = (record_et_al or len(ref.authors) <= len(authors)) and all(
            _same_person(p, r) for p, r in zip(ref.authors, authors))
        # A citation may stop with "et al"; otherwise it names everyone the record names.
        complete_ok = ref.et_al or (len(ref.authors) >= len(authors) if record_et_al else len(ref.authors) == len(authors))
        checks = [
            ("title", title_sim >= TITLE_MATCH or not ref.title),
            ("first_author", first_ok or not authors),
            ("authors", (listed_ok and complete_ok) or not authors),
            ("year", ref.year is None or rec_year is None or ref.year == rec_year),
            ("journal", not ref.journal or not (record.get("journal") or record.get("journal_iso")) or journal_ok),
            ("volume", not ref.volume or not _value(record, "volume") or volume_ok),
            ("issue", not ref.issue or not _value(record, "issue") or fold(ref.issue) == fold(record["issue"])),
            ("pages", not ref.pages or not _value(record, "pages") or pages_match(ref.pages, record["pages"])),
            ("doi", not ref.doi or not _value(record, "doi") or doi_ok),
        ]
        errors = [name for name, ok in checks if not ok]

    year_score = 0.0 if ref.year is None or rec_year is None else max(0.0, 1 - abs(ref.year - rec_year) / 5)
    same_surname = bool(ref.authors and authors and _name_parts(ref.authors[0])[0] == _name_parts(authors[0])[0])
    score = (0.4 * title_sim + 0.1 * first_ok + 0.15 * same_surname + 0.1 * year_score + 0.1 * journal_ok
             + 0.05 * volume_ok + 0.05 * first_page_ok + 0.05 * doi_ok)
    return Match(
        record_id=str(record.get("record_id") or (f"PMID:{record['pmid']}" if _value(record, "pmid") else "")),
        pmid=_value(record, "pmid") and str(record["pmid"]), doi=_value(record, "doi"),
        first_author=authors[0] if authors else None, year=rec_year, title=str(record.get("title") or ""),
        journal=_value(record, "journal") or _value(record, "journal_iso"), volume=_value(record, "volume"),
        issue=_value(record, "issue"), pages=_value(record, "pages"), score=score,
        identified=identified_by is not None, identified_by=identified_by, field_errors=tuple(errors),
        source=_value(record, "source") and str(record["source"]),
    )


# --------------------------------------------------------------------------- candidate sources


class CandidateSource(Protocol):
    mode: str      # "offline" or "live"
    searched: str  # what was searched, for sentences: "PubMed", "the local records of ..."

    def candidates(self, ref: Reference) -> pd.DataFrame:
        """Records (records-table columns) that might be the work ``ref`` cites."""


def _significant_words(title: str | None, limit: int = 6) -> list[str]:
    stop = {"a", "an", "the", "of", "in", "on", "for", "and", "or", "to", "with", "by", "as", "at", "from", "its"}
    return [w for w in fold(title).split() if w not in stop and len(w) > 2][:limit]


def local_store(snapshot_dir: str | Path, records: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every record of a snapshot: its searches' PubMed records, records looked up for
    citation checks (``lookups/``, with and without PMID) and records from other methods.

    ``records``: the snapshot's PubMed and other-method records when they are at hand already
    (a screening state's ``identified``; its registrations are left out, as here), so that they
    are not read from the snapshot again (43 s at 100,000 records).
    """
    from .dedupe import DATABASE_SOURCES, SEARCHED_SOURCES
    from .other_methods import read_other_methods, read_other_methods_folder
    from .records import load_lookup_records, load_records

    root = Path(snapshot_dir)
    if records is None:
        pubmed, other = load_records(root), read_other_methods_folder(root / "other_methods")
    else:
        source = records["source"]
        pubmed, other = records[source.isin(DATABASE_SOURCES)], records[~source.isin(SEARCHED_SOURCES)]
    frames = [pubmed, load_lookup_records(root), other,
              *(read_other_methods(p) for p in sorted((root / "lookups").glob("*.ris")))]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["record_id", "title", "authors"])


class LocalRecords:
    """Offline candidates: the records of the local store, selected as the live searches would.

    ``searched`` says what the store is, in the words a verdict's reason uses.

    A record is a candidate when an author's surname is one the reference names, its DOI is the
    cited one, or its title shares at least half (and at least two) of the reference title's
    significant words. Each record's words are folded once, into word -> records indexes, so a
    reference is looked up in them instead of folding every record again (a store of 100,000
    records and an article of nine references: seconds, not minutes); the rule itself is applied
    exactly, to the few records the indexes point at.
    """

    mode = "offline"
    name = "local records"

    def __init__(self, records: pd.DataFrame, searched: str = "the local records"):
        self.records = records.reset_index(drop=True)
        self.searched = searched
        self._index: tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]] | None = None

    def _indexes(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(author word, title word, lower-case DOI) -> positions of the records that have it.

        Supersets of the rule's own tests: every word of a record's folded authors and title (the
        rule looks at surnames only, and at most 50 significant title words).
        """
        if self._index is None:
            columns = self.records.columns
            n = len(self.records)
            authors = self.records["authors"] if "authors" in columns else pd.Series([None] * n)
            titles = self.records["title"] if "title" in columns else pd.Series([None] * n)
            dois = self.records["doi"] if "doi" in columns else pd.Series([None] * n)
            by_author: dict[str, list[int]] = {}
            by_title: dict[str, list[int]] = {}
            by_doi: dict[str, list[int]] = {}
            for pos, (listed, title, doi) in enumerate(zip(authors, titles, dois)):
                names = _record_authors(listed)[0]
                for word in set(fold_text(" ; ".join(names)).split()):  # each once: not worth remembering
                    by_author.setdefault(word, []).append(pos)
                for word in set(fold_text(title).split()):
                    by_title.setdefault(word, []).append(pos)
                if _present(doi):
                    by_doi.setdefault(str(doi).lower(), []).append(pos)
            self._index = tuple({k: np.asarray(v, dtype=np.int64) for k, v in d.items()}  # type: ignore[assignment]
                                for d in (by_author, by_title, by_doi))
        return self._index  # type: ignore[return-value]

    def candidates(self, ref: Reference) -> pd.DataFrame:
        surnames = {_name_parts(a)[0] for a in ref.authors}
        words = set(_significant_words(ref.title, limit=50))

        def plausible(row) -> bool:
            authors = _record_authors(row["authors"])[0]
            if any(_name_parts(a)[0] in surnames for a in authors):
                return True  # like the live "author [au] AND year" search, but any year
            if ref.doi and _present(row.get("doi")) and str(row["doi"]).lower() == ref.doi:
                return True
            shared = words & set(_significant_words(row.get("title"), limit=50))
            return bool(words) and len(shared) >= max(2, len(words) // 2)  # like the title-words search

        if not len(self.records):
            return self.records
        if "" in surnames:  # a cited name that folds to nothing: only a look at every record can say
            positions = np.arange(len(self.records))
        else:
            by_author, by_title, by_doi = self._indexes()
            empty = np.empty(0, dtype=np.int64)
            found = [empty]
            for surname in surnames:  # records whose authors hold every word of the surname
                postings = [by_author.get(w, empty) for w in surname.split()]
                hit = postings[0]
                for more in postings[1:]:
                    hit = np.intersect1d(hit, more, assume_unique=True)
                found.append(hit)
            if ref.doi:
                found.append(by_doi.get(ref.doi, empty))
            if words:
                counts = np.bincount(np.concatenate([empty] + [by_title.get(w, empty) for w in words]),
                                     minlength=len(self.records))
                found.append(np.flatnonzero(counts >= max(2, len(words) // 2)))
            positions = np.unique(np.concatenate(found))
        subset = self.records.iloc[positions]
        mask = subset.apply(plausible, axis=1) if len(subset) else pd.Series(dtype=bool)
        return subset[mask.astype(bool)] if len(subset) else subset


def parse_ecitmatch(text: str) -> dict[str, list[str]]:
    """ECitMatch's plain-text answer → {key: candidate PMIDs}, matched by key, not position.

    The last field is a PMID, ``NOT_FOUND...``/empty (no PMID) or ``AMBIGUOUS`` with an
    optional PMID list (protocol notes §6); AMBIGUOUS without a list gives no PMID.
    """
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.rstrip("\r").split("|")
        if len(fields) < 7:
            continue
        key, result = fields[5].strip(), fields[-1].strip()
        found[key] = [result] if result.isdigit() else (
            re.findall(r"\d{4,}", result.split(" ", 1)[1]) if result.startswith("AMBIGUOUS ") and "(" not in result else [])
    return found


class PubMedLookup:
    """Live candidates from PubMed through a ``reviewkit.entrez`` transport (recorded in its snapshot).

    ECitMatch (journal|year|volume|first page|author), ESearch by first author and
    year and by title words, then one EFetch of every PMID found. The EFetch
    exchanges are listed in the snapshot's ``lookups/manifest.json`` so a later
    offline check (``local_store``) sees these records too.
    """

    mode = "live"
    name = searched = "PubMed"

    def __init__(self, transport, retmax: int = 20):
        self.transport = transport
        self.retmax = retmax

    def _esearch(self, term: str, where: str) -> list[str]:
        from .entrez import parse_esearch

        body = self.transport.request("esearch", {"db": "pubmed", "term": term, "retmax": str(self.retmax)})
        if b"<PhraseNotFound>" in body and b"<Id>" not in body:
            return []  # an author or title word PubMed does not know: no candidates, not a failure
        return parse_esearch(body, where).ids

    def queries(self, ref: Reference) -> list[str]:
        """The ESearch terms tried for a reference."""
        terms = []
        if ref.first_author and ref.year:
            surname, initials = _name_parts(ref.first_author)
            terms.append(f"{surname} {initials[:1]}[au] AND {ref.year}[pdat]".replace(" [au]", "[au]"))
        words = _significant_words(ref.title)
        if words:
            terms.append(" AND ".join(f"{w}[ti]" for w in words))
        return terms

    def candidates(self, ref: Reference) -> pd.DataFrame:
        from .entrez import efetch_params
        from .pubmed import read_pubmed_xml

        pmids: list[str] = []
        if ref.journal and ref.year and ref.first_author:
            surname, initials = _name_parts(ref.first_author)
            bdata = "|".join([ref.journal, str(ref.year), ref.volume or "", _page_range(ref.pages)[0],
                              f"{surname} {initials[:1]}".strip(), "ref", ""])
            body = self.transport.request("ecitmatch", {"db": "pubmed", "retmode": "xml", "bdata": bdata})
            pmids += parse_ecitmatch(body.decode("utf-8", "replace")).get("ref", [])
        for term in self.queries(ref):
            pmids += self._esearch(term, f"{ref.where}: ESearch {term!r}")
        pmids = sorted(set(pmids), key=int)
        if not pmids:
            return pd.DataFrame(columns=["record_id", "title", "authors"])
        params = efetch_params(pmids)
        body = self.transport.request("efetch", params)
        self.transport.snapshot.record_lookup("efetch", params)
        frame = read_pubmed_xml(body, name=f"{ref.where}: EFetch")
        frame.insert(0, "record_id", ["PMID:" + p for p in frame["pmid"]])
        return frame


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class CitationCheck:
    """The verdict on one reference."""

    reference: Reference
    verdict: str                     # one of VERDICTS
    match: Match | None              # the record meant (verified, exists_with_errors)
    field_errors: tuple[str, ...]
    candidates: tuple[Match, ...]    # ambiguous: the plausible records; not_found: the nearest
    mode: str                        # "offline" or "live"
    live_could_change: bool          # offline only: could a live PubMed check give another answer?
    searched: str = "PubMed"         # the candidate source's ``searched`` (a chain's: its sources, joined)
    sources_searched: tuple[str, ...] = ()  # each source asked, in order ("PubMed", "Crossref")
    found_in: str | None = None      # the source whose record is the match (None: no record identified)
    retraction: RetractionStatus = UNKNOWN

    @property
    def retracted(self) -> bool | None:
        """True (a notice retracts the cited work), False (the sources read flag none), None (unknown)."""
        return self.retraction.retracted

    @property
    def pmid(self) -> str | None:
        return self.match.pmid if self.match else None

    @property
    def doi(self) -> str | None:
        return self.match.doi if self.match else None

    @property
    def nearest(self) -> Match | None:
        """The matched record, else the best-scoring candidate."""
        return self.match or (self.candidates[0] if self.candidates else None)

    def as_dict(self) -> dict:
        return {"reference": self.reference.text, "verdict": self.verdict, "pmid": self.pmid, "doi": self.doi,
                "field_errors": list(self.field_errors), "candidates": [m.as_dict() for m in self.candidates],
                "mode": self.mode, "searched": self.searched, "live_could_change": self.live_could_change,
                "sources_searched": list(self.sources_searched or (self.searched,)), "found_in": self.found_in,
                "retracted": self.retracted, "retraction_notices": list(self.retraction.notices),
                "retraction_checked_in": list(self.retraction.checked)}


def _work_key(m: Match) -> str:
    """Two records of one work (a PubMed record and a citation-searching record) count once."""
    return f"doi:{m.doi.lower()}" if m.doi else (f"pmid:{m.pmid}" if m.pmid else f"t:{fold(m.title)}|{m.year}")


def _distinct(matches: Iterable[Match]) -> list[Match]:
    best: dict[str, Match] = {}
    for m in sorted(matches, key=lambda m: (len(m.field_errors), m.pmid is None, -m.score)):
        best.setdefault(_work_key(m), m)
    return list(best.values())


def decide(ref: Reference, candidates: pd.DataFrame, mode: str, searched: str = "PubMed") -> CitationCheck:
    """Apply the scoring rule to every candidate and reach a verdict."""
    matches = sorted((compare(ref, row) for row in candidates.to_dict("records")), key=lambda m: -m.score)
    identified = _distinct(m for m in matches if m.identified)
    exact = [m for m in identified if not m.field_errors]
    offline = mode == "offline"
    if len(exact) == 1:
        # Verified against a record with a PMID is as far as a live check could go too.
        return CitationCheck(ref, "verified", exact[0], (), (), mode, offline and exact[0].pmid is None, searched)
    if len(identified) == 1:
        m = identified[0]
        return CitationCheck(ref, "exists_with_errors", m, m.field_errors, (), mode, offline, searched)
    if identified:
        return CitationCheck(ref, "ambiguous", None, (), tuple(identified), mode, offline, searched)
    nearest = tuple(m for m in matches if m.score >= NEAREST_FLOOR)[:MAX_LISTED]
    return CitationCheck(ref, "not_found", None, (), nearest, mode, offline, searched)


def check_reference(ref: Reference, source: CandidateSource | SourceChain) -> CitationCheck:
    if isinstance(source, SourceChain):
        return source.check(ref)
    candidates = source.candidates(ref)
    result = decide(ref, candidates, source.mode, source.searched)
    return replace(result, sources_searched=(source.searched,), found_in=_found_in(result, source))


def _found_in(result: CitationCheck, source: CandidateSource) -> str | None:
    if result.match is None:
        return None
    return result.match.source or getattr(source, "name", None) or source.searched


def _row_of(candidates: pd.DataFrame, match: Match | None) -> dict:
    if match is None or candidates.empty or "record_id" not in candidates.columns:
        return {}
    rows = candidates[candidates["record_id"].astype(str) == match.record_id]
    return rows.iloc[0].to_dict() if len(rows) else {}


class CrossrefLookup:
    """Candidates from Crossref (``reviewkit.crossref.CrossrefClient``): the work with the cited DOI,
    then the works Crossref ranks highest for the printed reference. Live (recorded in the snapshot)
    or replayed; a replay that lacks a request raises ``SnapshotError`` (the chain then says Crossref
    was not searched for that reference)."""

    name = "Crossref"
    searched = "Crossref"

    def __init__(self, client, mode: str):
        self.client = client
        self.mode = mode

    def candidates(self, ref: Reference) -> pd.DataFrame:
        rows = []
        if ref.doi:
            work = self.client.work(ref.doi)
            if work is not None:
                rows.append(work)
        rows += self.client.bibliographic(ref.text)
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["record_id", "title", "authors"])

    def retraction(self, dois: Sequence[str]) -> RetractionStatus:
        """What Crossref's notices say about these DOIs (``filter=updates:``); UNKNOWN without a DOI."""
        dois = [d for d in dict.fromkeys(d.lower() for d in dois if d)]
        if not dois:
            return UNKNOWN
        notices = self.client.notices_about(dois)
        return from_crossref([n for d in dois for n in notices.get(d, [])])


class SourceChain:
    """Sources asked in turn while a reference is not found, then the retraction check (module doc).

    ``first`` is PubMed (live) or the local records (offline); ``pubmed_checked``: whether the first
    source's PubMed records are PubMed's own (live, or a snapshot of live searches), so that their
    publication types can say "not retracted"; the sample's curated records cannot.
    """

    def __init__(self, first: CandidateSource, crossref: CrossrefLookup | None, *, pubmed_checked: bool):
        self.sources: list = [first] + ([crossref] if crossref is not None else [])
        self.crossref = crossref
        self.mode = first.mode
        self.pubmed_checked = pubmed_checked
        self.searched = " and ".join(s.searched for s in self.sources)

    def candidates(self, ref: Reference) -> pd.DataFrame:
        return self.sources[0].candidates(ref)

    def check(self, ref: Reference) -> CitationCheck:
        asked: list[tuple[str, str]] = []  # (name, words for a sentence)
        result: CitationCheck | None = None
        nearest: list[Match] = []
        row: dict = {}
        unrecorded = False
        for source in self.sources:
            try:
                candidates = source.candidates(ref)
            except ReviewkitError as exc:
                if source is not self.crossref:
                    raise
                if isinstance(exc, SnapshotError):
                    unrecorded = True  # offline, and no live check recorded Crossref's answer to this reference
                else:  # Crossref kept failing: the verdict says it was not searched
                    log.warning("%s: Crossref could not be searched (%s)", ref.where, exc)
                continue
            asked.append((getattr(source, "name", source.searched), source.searched))
            result = decide(ref, candidates, self.mode, source.searched)
            row = _row_of(candidates, result.match)
            result = replace(result, found_in=_found_in(result, source))
            if result.verdict != "not_found":
                break
            nearest += result.candidates
        assert result is not None  # the first source always answers
        if result.verdict == "not_found":  # the nearest records of every source searched
            nearest = _distinct(sorted(nearest, key=lambda m: -m.score))
            result = replace(result, candidates=tuple(sorted(nearest, key=lambda m: -m.score))[:MAX_LISTED])
        status = of_record(row, pubmed_checked=self.pubmed_checked) if row else UNKNOWN
        dois = [d for d in ((result.match.doi if result.match else None), ref.doi) if d]
        if self.crossref is not None and dois:
            try:
                status = combine(status, self.crossref.retraction(dois))
            except SnapshotError:
                pass  # offline, never recorded: Crossref's notices are not known (``retracted`` stays as it was)
            except ReviewkitError as exc:
                log.warning("%s: Crossref's retraction notices could not be read (%s)", ref.where, exc)
        result = replace(result, searched=" and ".join(words for _, words in asked),
                         sources_searched=tuple(name for name, _ in asked), retraction=status,
                         live_could_change=result.live_could_change or unrecorded)
        if status.retracted:
            result = replace(result, verdict="retracted")
        return result


def candidate_source(snapshot, live: bool, records: pd.DataFrame | None = None) -> SourceChain:
    """Where references are checked: PubMed live (recorded in ``snapshot``), else the snapshot's local
    records; then Crossref, live (recorded) or replayed from what live checks recorded.

    ``snapshot`` is a ``reviewkit.snapshot.Snapshot``; live credentials and Crossref's contact address
    come from the environment and are never recorded. ``records``: offline, the snapshot's records
    when already read (``local_store``).
    """
    from .crossref import CrossrefClient, crossref_transport

    crossref = CrossrefLookup(CrossrefClient(crossref_transport(snapshot, live)), "live" if live else "offline")
    if live:
        from .entrez import Credentials, LiveTransport

        return SourceChain(PubMedLookup(LiveTransport(snapshot, Credentials.from_env())), crossref,
                           pubmed_checked=True)
    searched = ("the local records of the bundled sample (a curated sample, not all of PubMed)" if snapshot.is_sample
                else f"the local records of snapshot {snapshot.root.name}")
    return SourceChain(LocalRecords(local_store(snapshot.root, records), searched), crossref,
                       pubmed_checked=not snapshot.is_sample)
