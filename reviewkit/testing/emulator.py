"""A loopback NCBI E-utilities server for PubMed: tests, benchmarks and demos drive
the real client (Bio.Entrez over real HTTP) against it instead of against NCBI.

It serves ``esearch``, ``efetch``, ``esummary``, ``epost`` and ``ecitmatch`` over a
collection of record dicts (the records-table columns plus ``pdat``/``edat``
dates and the query ``terms`` a record matches) and reproduces the wire
behaviour described in NCBI's documentation and observed in practice: the
history server with expiring WebEnvs, ``retstart``/``retmax`` paging, the 9,999
ESearch cap with the true ``Count``, date limits (``mindate``/``maxdate``/
``datetype`` and ranges written in the term), ``ErrorList``/``PhraseNotFound``,
``<ERROR>`` bodies, and HTTP 429 with NCBI's JSON body above 3 requests a
second (10 with an ``api_key``). Faults can be injected on demand or at random
with a fixed seed: 5xx, spurious 429, connection reset, truncated body, a
response slower than the client's timeout, a transient ``<ERROR>`` body, an
expired WebEnv, and an EFetch answered with an empty ``<PubmedArticleSet>``
(which NCBI sends now and then under load).

Query model (all that reviewkit's searches and its tests need): a term is split
at top-level ``AND``; conjuncts of the form ``lo:hi[UID]``, ``"d1"[pdat] : "d2"[pdat]``,
``d1:d2[pdat]`` or ``d[pdat]`` are filters, and so are the field searches a
citation check sends: ``word[ti]`` or ``"a phrase"[ti]`` (the words, in order, in
the title), ``Surname I[au]`` (an author whose name starts so; ``[1au]``: the
first author). What remains (the *core*) must equal, after normalising case,
whitespace and enclosing brackets, one of the record's ``terms``. ``all[sb]``
and an empty core match every record.

Run one by hand::

    python -m reviewkit.testing.emulator --port 8765 --records records.jsonl
    REVIEWKIT_EUTILS_URL=http://127.0.0.1:8765/entrez/eutils/ reviewkit search ...
"""

from __future__ import annotations

import argparse
import calendar
import collections
import datetime as dt
import json
import random
import re
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from ..io import read_jsonl
from .render import pubmed_xml

ESEARCH_CAP = 9999  # PubMed ESearch returns at most 9,999 ids; retstart <= 9998
EUTILS_PATH = "/entrez/eutils/"

_XML_DECL = '<?xml version="1.0" encoding="UTF-8" ?>\n'
_ESEARCH_DOCTYPE = (
    '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
)
_EPOST_DOCTYPE = (
    '<!DOCTYPE ePostResult PUBLIC "-//NLM//DTD epost 20090526//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20090526/epost.dtd">'
)
_ESUMMARY_DOCTYPE = (
    '<!DOCTYPE eSummaryResult PUBLIC "-//NLM//DTD esummary v1 20041029//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20041029/esummary-v1.dtd">\n'
)
# NCBI's own mismatch: the DOCTYPE says eEfetchResult, the root is eFetchResult.
_EFETCH_ERROR_DOCTYPE = (
    '<!DOCTYPE eEfetchResult PUBLIC "-//NLM//DTD efetch 20131226//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20131226/efetch.dtd">\n'
)

FAULT_KINDS = ("500", "502", "503", "429", "reset", "truncate", "slow", "error", "expired", "empty")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class _Record:
    pmid: int
    pdat: dt.date | None
    edat: dt.date | None
    terms: frozenset[str]
    data: Mapping  # the record dict as given, rendered on demand


def _parse_date(text: str, *, end: bool) -> dt.date:
    """``YYYY``, ``YYYY/MM`` or ``YYYY/MM/DD`` (``-`` also accepted); a partial
    date means its first day, or its last when it closes a range."""
    parts = [int(p) for p in re.split(r"[/-]", text.strip())]
    year = parts[0]
    if len(parts) == 1:
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    month = parts[1]
    if len(parts) == 2:
        return dt.date(year, month, calendar.monthrange(year, month)[1] if end else 1)
    return dt.date(year, month, parts[2])


def normalise_term(term: str) -> str:
    """Case, whitespace and enclosing brackets do not change what a query means."""
    text = " ".join(term.split()).lower()
    while text.startswith("(") and text.endswith(")") and _closing_paren(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing_paren(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def _record_from_dict(rec: Mapping) -> _Record:
    pmid = int(rec["pmid"])
    if rec.get("pdat"):
        pdat = _parse_date(str(rec["pdat"]), end=False)
    elif rec.get("year"):
        pdat = dt.date(int(rec["year"]), 1, 1)
    else:
        pdat = None  # undated: found by a query, never inside a date limit
    edat = _parse_date(str(rec["edat"]), end=False) if rec.get("edat") else pdat
    terms = rec.get("terms") or [*(rec.get("searches") or []), *(rec.get("retrieved_by") or [])]
    return _Record(pmid, pdat, edat, frozenset(normalise_term(t) for t in terms), rec)


def load_records(path) -> list[dict]:
    """Records with a PMID from a JSONL file (records without one are not PubMed records)."""
    return [rec for rec in read_jsonl(path) if rec.get("pmid")]


def synthetic_records(
    n: int,
    *,
    terms: Iterable[str] = ("synthetic",),
    start: dt.date = dt.date(2000, 1, 1),
    end: dt.date = dt.date(2024, 12, 31),
    first_pmid: int = 90_000_001,
    crowded_day: tuple[dt.date, int] | None = None,
    seed: int = 0,
) -> list[dict]:
    """``n`` clearly synthetic records (title says so, journal "Synthetic Journal of
    Emulator Tests") for volume tests. ``crowded_day=(day, k)`` puts ``k`` of them on
    one publication day, so that a single day exceeds the ESearch cap."""
    rng = random.Random(seed)  # noqa: S311 (synthetic test data)
    span = (end - start).days
    crowded = crowded_day[1] if crowded_day else 0
    records = []
    for i in range(n):
        day = crowded_day[0] if crowded_day and i < crowded else start + dt.timedelta(days=rng.randrange(span + 1))
        pmid = first_pmid + i
        records.append({
            "pmid": str(pmid),
            "doi": f"10.0000/synthetic.{pmid}",
            "title": f"Synthetic record {pmid} generated for emulator tests (not a real article)",
            "abstract": "Synthetic test data.",
            "authors": [f"Synthetic{i % 97} AB"],
            "journal": "Synthetic Journal of Emulator Tests",
            "journal_iso": "Synth J Emul Tests",
            "year": day.year,
            "volume": str(1 + i % 40),
            "issue": str(1 + i % 12),
            "pages": f"{1 + i % 900}-{2 + i % 900}",
            "publication_types": ["Journal Article"],
            "mesh_terms": ["Humans"],
            "language": "eng",
            "pdat": day.strftime("%Y/%m/%d"),
            "terms": list(terms),
        })
    return records


# --------------------------------------------------------------------------- query model

_UID_RANGE = re.compile(r"^(\d+)\s*:\s*(\d+)\s*\[uid\]$", re.I)
_DATE = r'"?(\d{4}(?:[/-]\d{1,2}){0,2})"?'
_DATE_TAG = r"\[(pdat|dp|edat|crdt|mdat|publication date|entrez date)\]"
_DATE_RANGE = re.compile(rf"^{_DATE}\s*(?:{_DATE_TAG})?\s*:\s*{_DATE}\s*{_DATE_TAG}$", re.I)
_DATE_ONE = re.compile(rf"^{_DATE}\s*{_DATE_TAG}$", re.I)
_EDAT_TAGS = {"edat", "crdt", "mdat", "entrez date"}
_FIELD = re.compile(r'^"?([^"\[\]]+?)"?\s*\[(ti|title|au|author|1au)\]$', re.I)
_FIELD_TAGS = {"ti": "ti", "title": "ti", "au": "au", "author": "au", "1au": "1au"}


def _split_and(term: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    upper = term.upper()
    while i < len(term):
        ch = term[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and upper.startswith(" AND ", i):
            parts.append(term[start:i])
            i += 5
            start = i
            continue
        i += 1
    parts.append(term[start:])
    return [p.strip() for p in parts if p.strip()]


def _words(text: object) -> list[str]:
    return re.findall(r"[a-z0-9]+", str(text or "").lower())


def _field_matches(tag: str, value: str, data: Mapping) -> bool:
    if tag == "ti":
        want, have = _words(value), _words(data.get("title"))
        return bool(want) and any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1))
    authors = [" ".join(str(a).lower().split()) for a in (data.get("authors") or [])]
    if tag == "1au":
        authors = authors[:1]
    # "berman" finds "Berman RM" but not "Bermanson A"; "berman r" finds "Berman RM"
    return any(a == value or a.startswith(value + " ") or (" " in value and a.startswith(value)) for a in authors)


@dataclass(frozen=True)
class _Query:
    core: str
    filters: tuple  # (field, lo, hi) with field "uid", "pdat" or "edat"
    fields: tuple = ()  # (tag, value) with tag "ti", "au" or "1au"

    def matches(self, rec: _Record) -> bool:
        if self.core not in ("", "all[sb]", "all") and self.core not in rec.terms:
            return False
        for fld, lo, hi in self.filters:
            value = rec.pmid if fld == "uid" else (rec.pdat if fld == "pdat" else rec.edat)
            if value is None or not lo <= value <= hi:
                return False
        return all(_field_matches(tag, value, rec.data) for tag, value in self.fields)


def parse_term(term: str) -> _Query:
    core: list[str] = []
    filters: list[tuple[str, Any, Any]] = []
    fields: list[tuple[str, str]] = []
    for part in _split_and(term):
        bare = normalise_term(part)
        if m := _UID_RANGE.match(bare):
            filters.append(("uid", int(m[1]), int(m[2])))
        elif m := _DATE_RANGE.match(bare):
            fld = "edat" if m[4].lower() in _EDAT_TAGS else "pdat"
            filters.append((fld, _parse_date(m[1], end=False), _parse_date(m[3], end=True)))
        elif m := _DATE_ONE.match(bare):
            fld = "edat" if m[2].lower() in _EDAT_TAGS else "pdat"
            filters.append((fld, _parse_date(m[1], end=False), _parse_date(m[1], end=True)))
        elif m := _FIELD.match(bare):
            fields.append((_FIELD_TAGS[m[2]], " ".join(m[1].split())))
        else:
            core.append(part)
    return _Query(normalise_term(" AND ".join(core)), tuple(filters), tuple(fields))


# --------------------------------------------------------------------------- XML bodies (articles: pubmed_render)


def _docsum_xml(rec: Mapping) -> str:
    def item(name, value, typ="String"):
        return f'\t<Item Name="{name}" Type="{typ}">{escape(str(value or ""))}</Item>\n'

    def items(name, inner_name, values):
        inner = "".join("\t" + item(inner_name, v) for v in values)
        return f'\t<Item Name="{name}" Type="List">\n{inner}\t</Item>\n'

    pubdate = rec.get("pdat") or rec.get("year") or ""
    ids = [("pubmed", rec["pmid"])] + [(k, rec[f]) for k, f in (("doi", "doi"), ("pmc", "pmcid")) if rec.get(f)]
    id_items = "".join("\t" + item(k, v) for k, v in ids)
    return (
        f"<DocSum>\n\t<Id>{escape(str(rec['pmid']))}</Id>\n"
        + item("PubDate", str(pubdate).replace("/", " "), "Date")
        + item("Source", rec.get("journal_iso") or rec.get("journal"))
        + items("AuthorList", "Author", rec.get("authors") or [])
        + item("Title", rec.get("title"))
        + item("Volume", rec.get("volume"))
        + item("Issue", rec.get("issue"))
        + item("Pages", rec.get("pages"))
        + items("PubTypeList", "PubType", rec.get("publication_types") or [])
        + f'\t<Item Name="ArticleIds" Type="List">\n{id_items}\t</Item>\n'
        + item("DOI", rec.get("doi"))
        + item("FullJournalName", rec.get("journal"))
        + "</DocSum>\n"
    )


def _esearch_error(message: str) -> bytes:
    return (_XML_DECL + _ESEARCH_DOCTYPE + f"<eSearchResult><ERROR>{escape(message)}</ERROR></eSearchResult>\n").encode()


def _efetch_error(message: str) -> bytes:
    return (_XML_DECL + _EFETCH_ERROR_DOCTYPE + f"<eFetchResult>\n\t<ERROR>{escape(message)}</ERROR>\n</eFetchResult>\n").encode()


def _simple_error(root: str, doctype: str, message: str) -> bytes:
    return (_XML_DECL + doctype + f"<{root}><ERROR>{escape(message)}</ERROR></{root}>\n").encode()


# --------------------------------------------------------------------------- server state


@dataclass(frozen=True)
class Faults:
    """Random faults: each request is faulted with probability ``rate`` (drawn from
    a generator seeded with ``seed``, so a sequential client sees the same faults
    on every run); the kind is drawn from those of ``kinds`` that fit the request."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    slow_seconds: float = 3.0


@dataclass(frozen=True)
class Exchange:
    """One request as the emulator saw it (the in-memory log tests and benchmarks read)."""

    time: float
    utility: str
    method: str
    params: Mapping[str, str]
    status: int
    fault: str | None


@dataclass
class _HistorySet:
    pmids: list[int]
    created: float


class Emulator:
    """The E-utilities emulator. Use as a context manager, or ``start()``/``stop()``::

        with Emulator(records) as emu:
            os.environ["REVIEWKIT_EUTILS_URL"] = emu.base_url
    """

    def __init__(
        self,
        records: Iterable[Mapping] = (),
        *,
        port: int = 0,
        rate_limit: bool = True,
        limits: tuple[int, int] = (3, 10),
        retry_after: float | None = None,
        history_ttl: float = 8 * 3600,
        history_fetch_cap: int | None = ESEARCH_CAP,
        faults: Faults = Faults(),
        aliases: Mapping[str, str] | None = None,
    ):
        self._records: dict[int, _Record] = {}
        self._by_term: dict[str, list[_Record]] = collections.defaultdict(list)
        self.add_records(records)
        self.port = port
        self.rate_limit = rate_limit
        self.limits = limits
        self.retry_after = retry_after
        self.history_ttl = history_ttl
        self.history_fetch_cap = history_fetch_cap
        self.faults = faults
        # query string -> a term records carry (e.g. the protocol's full query -> "aud")
        self.aliases = {normalise_term(k): normalise_term(v) for k, v in (aliases or {}).items()}
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        self._rng = random.Random(faults.seed)  # noqa: S311 (reproducible faults)
        self._queued: collections.deque[tuple[str, str | None]] = collections.deque()
        self._history: dict[str, dict[int, _HistorySet]] = {}
        self._windows: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._server: ThreadingHTTPServer | None = None

    # ---- collection

    def add_records(self, records: Iterable[Mapping]) -> None:
        """Add (or replace) records; lets a test make PubMed "grow" between runs."""
        for rec in records:
            r = _record_from_dict(rec)
            self._records[r.pmid] = r
        self._by_term.clear()
        for r in self._records.values():
            for t in r.terms:
                self._by_term[t].append(r)

    def remove_records(self, pmids: Iterable[int | str]) -> None:
        for pmid in pmids:
            self._records.pop(int(pmid), None)
        self.add_records(())

    def search(self, term: str, *, mindate=None, maxdate=None, datetype="pdat") -> list[int]:
        """The PMIDs a term matches, in the emulator's sort order (newest PMID first)."""
        query = parse_term(term)
        core = self.aliases.get(query.core, query.core)
        query = replace(query, core=core)
        if mindate or maxdate:
            fld = "edat" if (datetype or "pdat").lower() in _EDAT_TAGS else "pdat"
            lo = _parse_date(mindate, end=False) if mindate else dt.date.min
            hi = _parse_date(maxdate, end=True) if maxdate else dt.date.max
            query = replace(query, filters=query.filters + ((fld, lo, hi),))
        pool = self._records.values() if core in ("", "all", "all[sb]") else self._by_term.get(core, ())
        return sorted((r.pmid for r in pool if query.matches(r)), reverse=True)

    # ---- faults and history

    def inject(self, kind: str, *, utility: str | None = None, times: int = 1) -> None:
        """Queue a fault for the next ``times`` requests (to ``utility`` if given)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._queued.extend([(kind, utility)] * times)

    def expire_history(self) -> None:
        """Forget every WebEnv, as NCBI does after some hours."""
        with self._lock:
            self._history.clear()

    def _pick_fault(self, utility: str, uses_history: bool) -> str | None:
        with self._lock:
            for i, (kind, util) in enumerate(self._queued):
                if util in (None, utility):
                    del self._queued[i]
                    return kind
            if self.faults.rate and self._rng.random() < self.faults.rate:
                kinds = [k for k in self.faults.kinds
                         if (k != "expired" or uses_history) and (k != "empty" or utility == "efetch")]
                return self._rng.choice(kinds) if kinds else None
        return None

    def _store(self, pmids: list[int], webenv: str | None) -> tuple[str, int]:
        with self._lock:
            if not webenv or webenv not in self._history:
                webenv = "MCID_" + secrets.token_hex(12)
                self._history[webenv] = {}
            sets = self._history[webenv]
            key = len(sets) + 1
            sets[key] = _HistorySet(list(pmids), time.monotonic())
            return webenv, key

    def _lookup(self, webenv: str, query_key: str) -> list[int] | None:
        with self._lock:
            hs = self._history.get(webenv, {}).get(int(query_key)) if query_key.isdigit() else None
            if hs is None or time.monotonic() - hs.created > self.history_ttl:
                return None
            return hs.pmids

    def _over_limit(self, identity: str, has_key: bool) -> tuple[bool, int, int]:
        limit = self.limits[1] if has_key else self.limits[0]
        now = time.monotonic()
        with self._lock:
            window = self._windows[identity]
            while window and now - window[0] >= 1.0:
                window.popleft()
            window.append(now)
            return self.rate_limit and len(window) > limit, len(window), limit

    def _record_exchange(self, utility, method, params, status, fault) -> None:
        with self._lock:
            self.log.append(Exchange(time.time(), utility, method, dict(params), status, fault))

    def requests(self, utility: str | None = None) -> list[Exchange]:
        with self._lock:
            return [e for e in self.log if utility in (None, e.utility)]

    # ---- utilities: each returns (status, content type, body)

    def esearch(self, p: Mapping[str, str]):
        term = p.get("term", "")
        if p.get("db", "pubmed") != "pubmed":
            return 200, "text/xml", _esearch_error(f"Invalid db name specified: {p.get('db')}")
        pmids = self.search(term, mindate=p.get("mindate"), maxdate=p.get("maxdate"), datetype=p.get("datetype", "pdat"))
        count = len(pmids)
        if p.get("rettype") == "count":
            body = f"<eSearchResult><Count>{count}</Count></eSearchResult>\n"
            return 200, "text/xml", (_XML_DECL + _ESEARCH_DOCTYPE + body).encode()
        retstart, retmax = int(p.get("retstart", 0)), int(p.get("retmax", 20))
        if retstart > ESEARCH_CAP - 1:
            return 200, "text/xml", _esearch_error(
                f"Search Backend failed: Exception:\n'retstart' cannot be larger than {ESEARCH_CAP - 1}. "
                "For PubMed, ESearch can only retrieve the first 9,999 records matching the query. "
                "To obtain more than 9,999 PubMed records, consider using EDirect"
            )
        warning = ""
        if retstart + retmax > ESEARCH_CAP:
            retmax = ESEARCH_CAP - retstart
            warning = f"<OutputMessage>Restrictions achieved. start and count adjusted to {retstart}, {retmax}</OutputMessage>"
        page = pmids[retstart : retstart + retmax]
        history = ""
        if p.get("usehistory", "").lower() == "y":
            webenv, key = self._store(pmids, p.get("WebEnv") or p.get("webenv"))
            history = f"<QueryKey>{key}</QueryKey><WebEnv>{webenv}</WebEnv>"
        errors = ""
        if count == 0:
            core = self.aliases.get(parse_term(term).core, parse_term(term).core)
            if core not in ("", "all", "all[sb]") and core not in self._by_term:
                # the words match nothing at all; a known query limited to an empty window only warns
                errors = f"<ErrorList><PhraseNotFound>{escape(core)}</PhraseNotFound></ErrorList>"
            warning += "<OutputMessage>No items found.</OutputMessage>"
        warnings = f"<WarningList>{warning}</WarningList>" if warning else ""
        ids = "".join(f"\n<Id>{i}</Id>" for i in page)
        body = (
            f"<eSearchResult><Count>{count}</Count><RetMax>{len(page)}</RetMax><RetStart>{retstart}</RetStart>"
            f"{history}<IdList>{ids}\n</IdList><TranslationSet/><QueryTranslation>{escape(term)}</QueryTranslation>"
            f"{errors}{warnings}</eSearchResult>\n"
        )
        return 200, "text/xml", (_XML_DECL + _ESEARCH_DOCTYPE + body).encode()

    def _requested_ids(self, p: Mapping[str, str]):
        """(pmids, error response) from ``id`` or from a history set."""
        webenv = p.get("WebEnv") or p.get("webenv")
        if "id" in p:
            raw = [s.strip() for s in p["id"].split(",") if s.strip()]
            if not raw:
                return None, (200, "text/xml", _efetch_error("Supplied id parameter is empty."))
            ids = list(dict.fromkeys(int(s) for s in raw if s.isdigit() and int(s) > 0))  # each record once
            if not ids:
                return None, (400, "text/xml", _efetch_error("ID list is empty! Possibly it has no correct IDs."))
            return ids, None
        if webenv and p.get("query_key"):
            pmids = self._lookup(webenv, p["query_key"])
            if pmids is None:
                return None, (200, "text/xml", _efetch_error(f"Unable to obtain query #{p['query_key']}"))
            retstart, retmax = int(p.get("retstart", 0)), int(p.get("retmax", 20))
            if self.history_fetch_cap is not None and retstart >= self.history_fetch_cap:
                return None, (200, "text/xml", _efetch_error(
                    f"Search Backend failed: retstart {retstart} is beyond the {self.history_fetch_cap} "
                    "records that can be fetched from a history set"))
            return pmids[retstart : retstart + retmax], None
        return None, None

    def efetch(self, p: Mapping[str, str]):
        ids, error = self._requested_ids(p)
        if error:
            return error
        if ids is None:
            return 400, "text/xml", _efetch_error("Neither query_key nor id specified")
        if p.get("rettype") == "uilist":
            found = [str(i) for i in ids if i in self._records]
            return 200, "text/plain; charset=UTF-8", ("\n".join(found) + "\n").encode()
        articles = [dict(self._records[i].data) for i in ids if i in self._records]
        return 200, "text/xml; charset=UTF-8", pubmed_xml(articles)

    def esummary(self, p: Mapping[str, str]):
        ids, error = self._requested_ids(p)
        if error:
            status, ctype, _ = error
            message = "Unable to obtain query" if "query_key" in p else "Empty id list"
            return 200, ctype, _simple_error("eSummaryResult", _ESUMMARY_DOCTYPE, message)
        if ids is None:
            return 200, "text/xml", _simple_error("eSummaryResult", _ESUMMARY_DOCTYPE, "Neither query_key nor id specified")
        sums = "".join(_docsum_xml(self._records[i].data) for i in ids if i in self._records)
        return 200, "text/xml", (_XML_DECL + _ESUMMARY_DOCTYPE + f"<eSummaryResult>\n{sums}</eSummaryResult>\n").encode()

    def epost(self, p: Mapping[str, str]):
        ids = [int(s) for s in p.get("id", "").split(",") if s.strip().isdigit() and int(s) > 0]
        if not ids:
            return 200, "text/xml", _simple_error("ePostResult", _EPOST_DOCTYPE, "Empty ID list; Nothing to store")
        webenv, key = self._store(ids, p.get("WebEnv") or p.get("webenv"))
        body = f"<ePostResult>\n\t<QueryKey>{key}</QueryKey>\n\t<WebEnv>{webenv}</WebEnv>\n</ePostResult>\n"
        return 200, "text/xml", (_XML_DECL + _EPOST_DOCTYPE + body).encode()

    def ecitmatch(self, p: Mapping[str, str]):
        lines = []
        for cit in re.split(r"[\r\n]+", p.get("bdata", "")):
            if not cit.strip():
                continue
            fields = (cit.replace("+", " ").split("|") + [""] * 6)[:6]
            journal, year, volume, page, author, key = (f.strip() for f in fields)
            lines.append("|".join([journal, year, volume, page, author, key, self._citmatch(journal, year, volume, page)]))
        return 200, "text/plain; charset=UTF-8", ("\n".join(lines) + "\n").encode()

    def _citmatch(self, journal: str, year: str, volume: str, page: str) -> str:
        jnorm = journal.lower().replace(".", "")
        in_journal = [
            r.data for r in self._records.values()
            if jnorm in {str(r.data.get(k) or "").lower().replace(".", "") for k in ("journal", "journal_iso")}
        ]
        if not in_journal:
            return "NOT_FOUND;INVALID_JOURNAL"
        hits = [
            r["pmid"] for r in in_journal
            if (not year or str(r.get("year")) == year)
            and (not volume or str(r.get("volume") or "") == volume)
            and (not page or str(r.get("pages") or "").split("-")[0] == page)
        ]
        if len(hits) == 1:
            return str(hits[0])
        return f"AMBIGUOUS {','.join(map(str, hits))}" if hits else "NOT_FOUND"

    # ---- server lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{EUTILS_PATH}"

    def start(self) -> Emulator:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _make_handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="eutils-emulator", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_UTILITIES = {
    "esearch.fcgi": "esearch",
    "efetch.fcgi": "efetch",
    "esummary.fcgi": "esummary",
    "epost.fcgi": "epost",
    "ecitmatch.cgi": "ecitmatch",
}


class FaultyHandler(BaseHTTPRequestHandler):
    """What the loopback emulators share: no request log of http.server's (each keeps its own), an answer
    written whole or cut in half (the truncated fault), and a client that gave up never an error."""

    def log_message(self, *args):
        pass

    def write_answer(self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None,
                     *, truncate: bool = False) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if truncate else body)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. timed out on a slow fault)
            pass
        if truncate:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass


def _make_handler(emu: Emulator):
    class Handler(FaultyHandler):
        server_version = "reviewkit-eutils-emulator"

        def do_GET(self):
            self._serve(urlsplit(self.path).query)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            query = self.rfile.read(length).decode("utf-8")
            url_query = urlsplit(self.path).query
            self._serve("&".join(q for q in (url_query, query) if q))

        def _serve(self, query: str):
            path = urlsplit(self.path).path
            name = path[len(EUTILS_PATH):] if path.startswith(EUTILS_PATH) else None
            utility = _UTILITIES.get(name or "")
            params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
            if utility is None:
                return self._send(404, "text/plain", b"Not Found\n", utility or path, params, None)
            identity = params.get("api_key") or self.client_address[0]
            over, count, limit = emu._over_limit(identity, "api_key" in params)
            if over:
                return self._send_429(utility, params, identity, count, limit, None)
            uses_history = bool(params.get("WebEnv") or params.get("webenv"))
            fault = emu._pick_fault(utility, uses_history)
            if fault == "429":
                return self._send_429(utility, params, identity, count, limit, fault)
            if fault in ("500", "502", "503"):
                body = (b"<html><body>NCBI/eutils - WWW Error " + fault.encode()
                        + b" Diagnostic. Server Error. This could be a transient problem.</body></html>")
                return self._send(int(fault), "text/html", body, utility, params, fault)
            if fault == "reset":
                emu._record_exchange(utility, self.command, params, 0, fault)
                # SO_LINGER 0 makes close() send RST: the client sees "connection reset".
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if fault == "error":
                body = _simple_error("eSearchResult" if utility == "esearch" else "eFetchResult",
                                     _ESEARCH_DOCTYPE if utility == "esearch" else _EFETCH_ERROR_DOCTYPE,
                                     "Search Backend failed: Unable to open connection to #PMQuerySrv")
                return self._send(200, "text/xml", body, utility, params, fault)
            if fault == "expired":
                emu.expire_history()
            if fault == "empty" and utility == "efetch":
                return self._send(200, "text/xml; charset=UTF-8", pubmed_xml([]), utility, params, fault)
            status, ctype, body = getattr(emu, utility)(params)
            if fault == "slow":
                time.sleep(emu.faults.slow_seconds)
            if fault == "truncate":
                return self._send(status, ctype, body, utility, params, fault, truncate=True)
            self._send(status, ctype, body, utility, params, fault)

        def _send_429(self, utility, params, identity, count, limit, fault):
            shown = params.get("api_key", identity)
            body = json.dumps({"error": "API rate limit exceeded", "api-key": shown,
                               "count": str(count), "limit": str(limit)}).encode()
            headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
            if emu.retry_after is not None:
                headers["Retry-After"] = f"{emu.retry_after:g}"
            self._send(429, "application/json", body, utility, params, fault or "rate-limit", headers=headers)

        def _send(self, status, ctype, body, utility, params, fault, *, truncate=False, headers=None):
            emu._record_exchange(utility, self.command, params, status, fault)
            self.write_answer(status, ctype, body, headers, truncate=truncate)

    return Handler


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reviewkit.testing.emulator",
        description="Serve an NCBI E-utilities (PubMed) emulator on 127.0.0.1 over a record collection.",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--records", action="append", default=[], metavar="FILE",
                        help="JSONL records (records-table columns, plus 'pdat' and 'terms'); repeatable")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="add N synthetic records matching the term 'synthetic' (test data, not real)")
    parser.add_argument("--aliases", metavar="FILE", help="JSON object mapping a query string to a record term")
    parser.add_argument("--no-rate-limit", action="store_true", help="never answer 429 for request rate")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fraction of responses faulted at random")
    parser.add_argument("--seed", type=int, default=0, help="seed for random faults")
    args = parser.parse_args(argv)
    records = [rec for path in args.records for rec in load_records(path)] + synthetic_records(args.synthetic)
    aliases = json.loads(open(args.aliases, encoding="utf-8").read()) if args.aliases else None
    emu = Emulator(records, port=args.port, rate_limit=not args.no_rate_limit,
                   faults=Faults(rate=args.fault_rate, seed=args.seed), aliases=aliases)
    emu.start()
    print(f"E-utilities emulator serving {len(emu._records)} records at {emu.base_url}", flush=True)
    print(f"point reviewkit at it with: REVIEWKIT_EUTILS_URL={emu.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emu.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
