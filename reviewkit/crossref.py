"""Crossref (REST API): works by DOI and by bibliographic search, and the notices about them;
recorded in the snapshot, live or replayed.

Crossref is reviewkit's second source for references: a cited work PubMed does not index is
looked up here (``GET /works/{doi}``, then ``GET /works?query.bibliographic=...``) and scored by
the same field-by-field rule (``reviewkit.citations``). A work's ``updated-by`` lists the notices
about it (retractions, corrections, expressions of concern); a notice's ``update-to`` the works it
updates. For a set of DOIs (the included studies), ``notices_about`` asks ``/works`` with
``filter=updates:<doi>,...`` and walks every page with Crossref's cursor.

The cursor Crossref hands back is the same string on every page of a walk (the server keeps the
position), so a page is recorded under its number too (``_page``, reviewkit's own parameter, never
sent): a replay then finds each page. The walk checks that the items gathered number
``total-results``.

Crossref's pools: without a contact address requests go to the public pool (5 requests a second,
one at a time, in 2026); with one, to the polite pool (10 a second). The contact address comes from
``REVIEWKIT_CROSSREF_MAILTO``, else ``NCBI_EMAIL`` (the address NCBI already has), and travels only in
the ``User-Agent`` header: it is never recorded, logged or shown. The limit the service announces in
its ``X-Rate-Limit-*`` headers is kept when it is lower. ``REVIEWKIT_CROSSREF_URL`` replaces
``https://api.crossref.org/`` (proxies, the loopback emulator).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from .snapshot import Snapshot
from .transport import ApiTransport, NotFound, ReplayTransport, Service, ServiceError, Transport

log = logging.getLogger(__name__)

SOURCE = "Crossref"
CROSSREF_API = "https://api.crossref.org/"
PUBLIC_LIMIT, POLITE_LIMIT = 5, 10  # requests a second (x-rate-limit-limit, 2026)
CROSSREF = Service(SOURCE, CROSSREF_API, "REVIEWKIT_CROSSREF_URL", limit=PUBLIC_LIMIT, interval=1.0,
                   paths={"crossref.work": "works/{doi}", "crossref.works": "works"})
CONTACT_VARIABLES = ("REVIEWKIT_CROSSREF_MAILTO", "NCBI_EMAIL")
RECORD_PREFIX = "DOI:"
NOTICE_ROWS = 100
DOIS_PER_QUERY = 20  # filter=updates:... for this many DOIs keeps a URL well under servers' limits
MAX_PAGES = 1000
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")


def contact_address(environ: Mapping[str, str] = os.environ) -> str | None:
    """The address Crossref's polite pool is asked with (never stored): the first variable set."""
    return next((environ[v].strip() for v in CONTACT_VARIABLES if environ.get(v, "").strip()), None)


def crossref_transport(snapshot: Snapshot, live: bool) -> Transport:
    """Live: Crossref, polite pool when a contact address is set; offline: the snapshot's recordings."""
    if not live:
        return ReplayTransport(snapshot)
    contact = contact_address()
    service = replace(CROSSREF, limit=POLITE_LIMIT) if contact else CROSSREF
    return ApiTransport(snapshot, service, contact=contact)


def normalise_doi(doi: object) -> str | None:
    """A DOI lower-cased without its ``https://doi.org/`` or ``doi:`` prefix, or None when it is not one.
    A DOI read from a hostile file becomes part of a URL path: "." and ".." segments are refused."""
    text = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", str(doi or "").strip(), flags=re.I).lower()
    if not _DOI.match(text) or any(part in (".", "..") for part in text.split("/")):
        return None
    return text


# -- a work as a record -----------------------------------------------------------
def _first(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def _author(person: Mapping) -> str | None:
    """Crossref's ``{given, family}`` as the records table writes names: ``"Family GI"``."""
    family = _first(person.get("family"))
    if not family:
        return _first(person.get("name"))  # a group author
    initials = "".join(p[0] for p in re.split(r"[\s\-.]+", str(person.get("given") or "")) if p and p[0].isalpha())
    return f"{family} {initials.upper()}".strip()


def _year(work: Mapping) -> int | None:
    for name in ("issued", "published-print", "published-online", "published", "created"):
        parts = (work.get(name) or {}).get("date-parts") if isinstance(work.get(name), Mapping) else None
        if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0] and \
                isinstance(parts[0][0], int):
            return parts[0][0]
    return None


def updates(work: Mapping) -> list[str]:
    """The work's update relations as ``"<type> <doi> (updated-by|update-to)"``: notices about it, and
    (for a notice) the works it updates."""
    out = []
    for relation in ("updated-by", "update-to"):
        for item in work.get(relation) or []:
            if isinstance(item, Mapping):
                doi = normalise_doi(item.get("DOI")) or "no DOI given"
                out.append(f"{str(item.get('type') or 'update').strip().lower()} {doi} ({relation})")
    return out


def work_record(work: Mapping) -> dict:
    """A Crossref work as a records-table row (``source`` Crossref, ``record_id`` ``DOI:<doi>``) with
    ``crossref_updates`` (:func:`updates`)."""
    doi = normalise_doi(work.get("DOI"))
    if doi is None:
        raise ServiceError(f"Crossref work without a valid DOI ({str(work.get('DOI'))[:60]!r})")
    authors = [a for a in (_author(p) for p in work.get("author") or [] if isinstance(p, Mapping)) if a]
    return {
        "record_id": RECORD_PREFIX + doi, "source": SOURCE, "pmid": None, "doi": doi, "pmcid": None,
        "title": _first(work.get("title")) or "", "abstract": "", "authors": authors,
        "first_author": authors[0] if authors else None, "year": _year(work),
        "journal": _first(work.get("container-title")), "journal_iso": _first(work.get("short-container-title")),
        "volume": _first(work.get("volume")), "issue": _first(work.get("issue")),
        "pages": _first(work.get("page")) or _first(work.get("article-number")), "language": _first(work.get("language")),
        "publication_types": [str(work["type"])] if isinstance(work.get("type"), str) else [], "mesh_terms": [],
        "is_human": False, "is_animal": False, "comments_corrections": [], "searches": [],
        "crossref_updates": updates(work),
    }


def _message(body: bytes, where: str, kind: str) -> Mapping:
    try:
        data = json.loads(body)
    except ValueError:
        raise ServiceError(f"{where}: Crossref answer is not JSON") from None
    message = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(message, Mapping) or data.get("message-type") != kind:
        raise ServiceError(f"{where}: Crossref answer is not a {kind}")
    return message


def parse_work(body: bytes, where: str) -> dict:
    return work_record(_message(body, where, "work"))


def parse_list(body: bytes, where: str) -> tuple[list[dict], int, str | None]:
    """(records, total-results, next-cursor) of a ``work-list`` answer."""
    message = _message(body, where, "work-list")
    items = message.get("items")
    total = message.get("total-results")
    if not isinstance(items, list) or not isinstance(total, int):
        raise ServiceError(f"{where}: Crossref list has no items or total-results")
    cursor = message.get("next-cursor")
    return [work_record(i) for i in items if isinstance(i, Mapping)], total, cursor if isinstance(cursor, str) else None


# -- the client ----------------------------------------------------------------------
class CrossrefClient:
    """Crossref through a transport (live and recorded, or replayed). ``record`` lists the lookups in the
    snapshot's ``lookups/manifest.json`` so an offline check finds what a live one found."""

    def __init__(self, transport: Transport):
        self.transport = transport

    def _get(self, utility: str, params: dict[str, str]) -> bytes:
        body = self.transport.request(utility, params, reuse=not self.transport.records)
        if self.transport.records:
            self.transport.snapshot.record_lookup(utility, params)
        return body

    def work(self, doi: str) -> dict | None:
        """The work with this DOI, or None when Crossref does not know it (404, recorded)."""
        clean = normalise_doi(doi)
        if clean is None:
            return None
        try:
            return parse_work(self._get("crossref.work", {"doi": clean}), f"Crossref work {clean}")
        except NotFound:
            if self.transport.records:  # the 404 was recorded: an offline check knows Crossref said so
                self.transport.snapshot.record_lookup("crossref.work", {"doi": clean})
            return None

    def bibliographic(self, text: str, rows: int = 5) -> list[dict]:
        """The works Crossref ranks highest for a printed reference (``query.bibliographic``)."""
        params = {"query.bibliographic": " ".join(text.split())[:1000], "rows": str(rows)}
        return parse_list(self._get("crossref.works", params), "Crossref bibliographic search")[0]

    def notices_about(self, dois: Iterable[str]) -> dict[str, list[str]]:
        """DOI -> the notices Crossref holds about it (``"retraction 10.x/y (update-to)"`` read from each
        notice's side), every page of every cursor walk; DOIs with no notice are absent."""
        wanted = sorted({d for d in map(normalise_doi, dois) if d})
        found: dict[str, list[str]] = {}
        for start in range(0, len(wanted), DOIS_PER_QUERY):
            batch = wanted[start:start + DOIS_PER_QUERY]
            for notice in self._walk({"filter": ",".join(f"updates:{d}" for d in batch), "rows": str(NOTICE_ROWS)}):
                for relation in notice["crossref_updates"]:
                    kind, doi, side = relation.split(" ", 2)
                    if side == "(update-to)" and doi in batch:
                        found.setdefault(doi, []).append(f"{kind} {notice['doi']} (updated-by)")
        return {d: sorted(set(v)) for d, v in found.items()}

    def _walk(self, params: dict[str, str]) -> list[dict]:
        """Every item of a list query, page by page with the cursor; the count must equal total-results."""
        where = f"Crossref {params.get('filter') or 'list'}"
        items: list[dict] = []
        cursor, total = "*", None
        for page in range(1, MAX_PAGES + 1):
            page_params = {**params, "cursor": cursor, **({"_page": str(page)} if page > 1 else {})}
            records, page_total, cursor_next = parse_list(self._get("crossref.works", page_params), where)
            total = page_total if total is None else total
            items += records
            if not records or len(records) < int(params["rows"]) or not cursor_next or len(items) >= total:
                break
            cursor = cursor_next
        if len({i["doi"] for i in items}) != total:
            raise ServiceError(f"{where}: Crossref reports total-results {total} but the pages gave "
                               f"{len({i['doi'] for i in items})} distinct works")
        return items
