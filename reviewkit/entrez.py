"""PubMed searches through Bio.Entrez, recorded in a snapshot; live or replayed.

One code path: ``run_search`` asks a *transport* for E-utilities responses.
``LiveTransport`` performs the request with Bio.Entrez and records it in the
snapshot; ``ReplayTransport`` answers from the snapshot and fails loudly,
naming the request, when something was never recorded.

Choices that shape this module:

* ESearch runs with ``usehistory=y`` (the manifest keeps PubMed's WebEnv for
  provenance) and ``retmax=9999``, PubMed's retrieval cap. Above the cap the
  date range is halved recursively down to a day, then split by PMID range;
  the distinct PMIDs gathered must equal Count (``find_pmids``).
* Bio.Entrez builds each request (parameters, GET or POST, ECitMatch's
  encoding); the transport sends it with an opener of its own, paced by the
  process's rate limiter (``ratelimit``: NCBI counts requests per client) and
  retried here, not by Bio.Entrez, whose module settings are never touched.
  Only good answers are recorded: an EFetch answer that lacks any record asked
  for (empty, or short) is retried like a failure, never stored as good.
  Retries and waits are logged (``reviewkit`` logger), so a stalled run says why.
* Run again on a snapshot, a search fetches only PMIDs it does not hold and
  reports new and dropped PMIDs (a living search); a killed run resumes. New
  answers are recorded beside the old ones and the search's manifest is
  replaced only once the whole search succeeded, so a failed update leaves a
  snapshot that still replays as before.
* EFetch is by PMID list in batches (Bio.Entrez POSTs lists of 200 or more),
  not by WebEnv: a batch is then identified by its PMIDs, so a resumed or
  replayed run reuses it whatever WebEnv the server hands out, and history
  expiry cannot break a long fetch.
* Credentials come from ``NCBI_EMAIL`` / ``NCBI_API_KEY`` or arguments, go to
  NCBI with each request, and are never stored, logged or put in a message.
* ``REVIEWKIT_EUTILS_URL`` replaces ``https://eutils.ncbi.nlm.nih.gov/entrez/eutils/``
  (proxies, the loopback emulator); the transport's own opener rewrites the
  URL Bio.Entrez builds.
"""

from __future__ import annotations

import calendar
import http.client
import logging
import os
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit

from Bio import Entrez
from lxml import etree

from .errors import EntrezError, SnapshotError
from .protocol import Protocol
from .pubmed import iter_pubmed_xml
from .ratelimit import LIMITER, RateLimiter, ncbi_rate
from .redact import excerpt
from .snapshot import Snapshot
from .transport import (
    TRANSIENT_HTTP,
    RetryPolicy,
    Transport,
    describe,
    opener_for,
    send_with_retries,
    short,
)
from .transport import ReplayTransport as ReplayTransport  # re-exported: the replay half of this module's one code path

log = logging.getLogger(__name__)

NCBI_EUTILS = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
PUBMED_RETRIEVAL_CAP = 9999
DEFAULT_BATCH = 500
TOOL = "reviewkit"


def eutils_base() -> str:
    """``REVIEWKIT_EUTILS_URL`` (checked: an http(s) URL with a host), else NCBI's E-utilities."""
    base = os.environ.get("REVIEWKIT_EUTILS_URL", "").strip() or NCBI_EUTILS
    try:
        parts = urlsplit(base)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise EntrezError(f"REVIEWKIT_EUTILS_URL {excerpt(base)} is not an http(s) URL with a host "
                          f"(e.g. {NCBI_EUTILS})")
    return base if base.endswith("/") else base + "/"


@dataclass(frozen=True)
class Credentials:
    """Who we are to NCBI. ``repr`` never shows the values."""

    email: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, email: str | None = None, api_key: str | None = None) -> Credentials:
        return cls(email or os.environ.get("NCBI_EMAIL") or None,
                   api_key or os.environ.get("NCBI_API_KEY") or None)

    def params(self) -> dict[str, str]:
        out = {"tool": TOOL}
        if self.email:
            out["email"] = self.email
        if self.api_key:
            out["api_key"] = self.api_key
        return out

    def secrets(self) -> list[str]:
        return [s for s in (self.email, self.api_key) if s]


# -- live -------------------------------------------------------------------
def build_request(utility: str, params: dict[str, str], base: str = NCBI_EUTILS) -> urllib.request.Request:
    """The HTTP request Bio.Entrez's ``Entrez.<utility>(**params)`` would send, addressed to ``base``.

    Bio.Entrez decides the method (POST for long parameter lists, 200 or more ids, and
    EPost) and the encoding (ECitMatch keeps its ``|``). Its module settings (email,
    api_key, tool) are never used: ``params`` carries them, or None. Its sending
    function paces and retries with process-wide settings, so the transport sends
    the request itself.
    """
    script = "ecitmatch.cgi" if utility == "ecitmatch" else f"{utility}.fcgi"
    variables: dict[str, str | None] = {"tool": TOOL, "email": None, "api_key": None, **params}
    if utility == "ecitmatch":
        variables = Entrez._update_ecitmatch_variables(variables)
    return Entrez._build_request(base + script, variables, post=True if utility == "epost" else None,
                                 ecitmatch=utility == "ecitmatch")


# Root element each utility answers with when it worked.
EXPECTED_ROOT = {"esearch": "eSearchResult", "efetch": "PubmedArticleSet",
                 "esummary": "eSummaryResult", "epost": "ePostResult"}


class LiveTransport:
    """Performs requests with Bio.Entrez and records each good answer in the snapshot.

    Bio.Entrez builds each request (``build_request``) but does not send it: its
    sending retries 429/5xx at once, without back-off or timeout, under
    process-wide settings. Here every request waits its turn
    at the process's rate limiter (3/s, 10/s with an API key, or ``rate``),
    goes through the transport's own opener (``base_url``, no process-wide
    urllib or Bio.Entrez setting), has a ``timeout``, and is retried by
    ``reviewkit.transport.send_with_retries`` (back-off with jitter, a
    Retry-After header wins) on 429, 5xx, timeouts, connection errors,
    truncated or unparseable bodies and ``<ERROR>`` bodies, up to
    ``max_attempts``; then an error names the request. Only a good answer is
    recorded, so a snapshot never replays a failure.
    """

    records = True

    def __init__(self, snapshot: Snapshot, credentials: Credentials | None = None, *,
                 base_url: str | None = None, timeout: float = 60.0, max_attempts: int = 6,
                 backoff: float = 1.0, max_backoff: float = 60.0, rate: float | None = None,
                 limiter: RateLimiter = LIMITER):
        self.snapshot = snapshot
        self.credentials = credentials or Credentials.from_env()
        self.base = base_url or eutils_base()
        self.timeout, self.max_attempts, self.backoff, self.max_backoff = timeout, max_attempts, backoff, max_backoff
        self.rate = rate or ncbi_rate(bool(self.credentials.api_key))
        self.limiter = limiter
        self._opener = opener_for(self.base)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.timeout, self.max_attempts, self.backoff, self.max_backoff)

    def _send(self, utility: str, request: urllib.request.Request) -> bytes:
        waited = self.limiter.wait(self.rate)
        if waited > 1:
            log.info("%s: waited %.1f s for the NCBI rate limit (%.0f requests/s)", utility, waited, self.rate)
        with self._opener.open(request, timeout=self.timeout) as response:
            return response.read()

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes:
        if reuse:
            recorded = self.snapshot.get(utility, params)
            if recorded is not None:
                problem = body_problem(utility, recorded.body, params)
                if problem is None:
                    return recorded.body
                log.warning("%s: the recorded answer is not usable (%s); asking again (%s)", utility, problem,
                            describe(params))
        request = build_request(utility, {**params, **self.credentials.params()}, self.base)
        _, body = send_with_retries(
            lambda: self._send(utility, request), name=utility, shown=describe(params), policy=self.policy,
            problem=lambda b: body_problem(utility, b, params), error=EntrezError,
            transient=lambda exc: exc.code in TRANSIENT_HTTP or _relayed_proxy_failure(exc))
        return self.snapshot.put(utility, params, body, method=request.get_method()).body


def body_problem(utility: str, body: bytes, params: dict[str, str] | None = None) -> str | None:
    """Why a 200 answer cannot be used (and should be asked for again), or None.

    Truncated or malformed XML, an ``<ERROR>`` (NCBI's "Search Backend failed",
    "Unable to obtain query #1" and relayed proxy failures are transient), the
    wrong root element, or an EFetch by PMID list (``params["id"]``) whose
    answer lacks records asked for: NCBI sometimes answers an empty or short
    set, and a record that PubMed's own ESearch just listed exists. ESearch
    ``ErrorList`` answers are complete answers; ``parse_esearch`` reports them.
    """
    root_name = EXPECTED_ROOT.get(utility)
    if root_name is None:
        return None  # ECitMatch answers plain text
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False, huge_tree=True)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        return f"a body that is not well-formed XML ({exc.msg}; {len(body)} bytes)"
    error = root.findtext(".//ERROR") if root.tag != "PubmedArticleSet" else None
    if error:
        return f"<ERROR>{short(error.strip())}</ERROR>"
    if root.tag != root_name:
        return f"<{root.tag}> where <{root_name}> was expected"
    if utility == "efetch" and params and params.get("id"):
        asked = {p for p in str(params["id"]).split(",") if p}
        returned = {p.strip() for p in _RETURNED_PMIDS(root)}
        missing = sorted(asked - returned, key=lambda p: (len(p), p))
        if missing:
            return (f"an answer with {len(asked) - len(missing)} of the {len(asked)} records asked for "
                    f"(missing PMID {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})")
    return None


_RETURNED_PMIDS = etree.XPath("PubmedArticle/MedlineCitation/PMID/text() | PubmedBookArticle/BookDocument/PMID/text()")


def _relayed_proxy_failure(exc: HTTPError) -> bool:
    """NCBI relays backend proxy failures as HTTP 400 with a proxy_stream body: transient."""
    if exc.code != 400:
        return False
    try:
        return b"proxy_stream" in exc.read()
    except (OSError, http.client.HTTPException):
        return False


# -- ESearch ----------------------------------------------------------------
@dataclass(frozen=True)
class ESearchResult:
    count: int
    ids: list[str]
    query_translation: str | None
    webenv: str | None
    query_key: str | None
    warnings: list[str]


def parse_esearch(body: bytes, where: str) -> ESearchResult:
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise EntrezError(f"{where}: ESearch answer is not XML ({exc.msg})") from None
    if root.tag != "eSearchResult":
        raise EntrezError(f"{where}: expected <eSearchResult>, got <{root.tag}>")
    error = root.findtext("ERROR")
    if error:
        raise EntrezError(f"{where}: PubMed reported an error: {excerpt(error.strip(), 200)}")
    errors = [f"{e.tag}: {e.text}" for e in root.findall("ErrorList/*")]
    if errors:
        # PhraseNotFound / FieldNotFound: PubMed silently ran a different query than written.
        raise EntrezError(f"{where}: PubMed could not run the query as written: {excerpt('; '.join(errors), 200)}")
    count = root.findtext("Count")
    if count is None or not count.strip().isdigit():
        raise EntrezError(f"{where}: ESearch answer has no <Count> that is a number")
    return ESearchResult(
        count=int(count),
        ids=[i.text.strip() for i in root.findall("IdList/Id")],
        query_translation=root.findtext("QueryTranslation"),
        webenv=root.findtext("WebEnv"),
        query_key=root.findtext("QueryKey"),
        warnings=[f"{w.tag}: {w.text}" for w in root.findall("WarningList/*")],
    )


# -- a whole search -----------------------------------------------------------
@dataclass(frozen=True)
class SearchResult:
    key: str
    query: str
    count: int
    pmids: list[str]
    manifest: dict
    # Against the snapshot's previous run of this search (None on a first run):
    new_pmids: list[str] | None = None
    dropped_pmids: list[str] | None = None

    @property
    def retrieved(self) -> int:
        return len(self.manifest["fetched_pmids"])


def esearch_params(query: str, date_params: dict[str, str]) -> dict[str, str]:
    return {"db": "pubmed", "term": query, "usehistory": "y", "retstart": "0",
            "retmax": str(PUBMED_RETRIEVAL_CAP), **date_params}


def efetch_params(pmids: Iterable[str]) -> dict[str, str]:
    return {"db": "pubmed", "id": ",".join(pmids), "retmode": "xml"}


# Bounds of the date windows when the protocol sets no date limits.
EARLIEST = "1700/01/01"
LATEST = "2100/12/31"
UID_MAX = 999_999_999


@dataclass(frozen=True)
class Found:
    """What the ESearch step established: the PMIDs, and how they were gathered."""

    top: ESearchResult
    pmids: list[str]
    slices: list[dict]  # one per window when the search had to be split (PRISMA-S: how)
    exchanges: list[str]


def find_pmids(transport: Transport, query: str, date_params: dict[str, str], where: str) -> Found:
    """All PMIDs of a query. Above PubMed's 9,999 cap the date range is split in
    halves, recursively down to one day, then by PMID range; windows never
    overlap, and the PMIDs gathered must number exactly the unsplit Count."""
    params = esearch_params(query, date_params)
    body = transport.request("esearch", params)
    top = parse_esearch(body, where)
    exchanges = [transport.snapshot.name_of("esearch", params, body)]
    if top.count <= PUBMED_RETRIEVAL_CAP:
        _check_window(top, where)
        return Found(top, sorted(set(top.ids), key=int), [], exchanges)

    datetype = date_params.get("datetype") or "pdat"
    slices: list[dict] = []

    def window(lo: date, hi: date, uids: tuple[int, int] | None) -> list[str]:
        term = query if uids is None else f"({query}) AND {uids[0]}:{uids[1]}[uid]"
        limits = {"datetype": datetype, "mindate": _ymd(lo), "maxdate": _ymd(hi)}
        params = esearch_params(term, limits)
        label = f"{where}, {datetype} {limits['mindate']}-{limits['maxdate']}" + (
            f", PMIDs {uids[0]}-{uids[1]}" if uids else "")
        body = transport.request("esearch", params)
        res = parse_esearch(body, label)
        exchanges.append(transport.snapshot.name_of("esearch", params, body))
        if res.count <= PUBMED_RETRIEVAL_CAP:
            _check_window(res, label)
            slices.append({**limits, "uids": list(uids) if uids else None, "count": res.count})
            return res.ids
        if lo < hi:
            mid = lo + timedelta(days=(hi - lo).days // 2)
            return window(lo, mid, uids) + window(mid + timedelta(days=1), hi, uids)
        if uids is None:
            # One day over the cap. The PMIDs PubMed did return bound a middle range;
            # the ranges either side of it hold the rest.
            pmids = sorted(int(i) for i in res.ids)
            ranges = [(1, pmids[0] - 1), (pmids[0], pmids[-1]), (pmids[-1] + 1, UID_MAX)]
        elif uids[0] < uids[1]:
            middle = (uids[0] + uids[1]) // 2
            ranges = [(uids[0], middle), (middle + 1, uids[1])]
        else:
            raise EntrezError(f"{label}: one PMID cannot match {res.count} records; PubMed answered inconsistently")
        return [pmid for r in ranges if r[0] <= r[1] for pmid in window(lo, hi, r)]

    lo = _day(date_params.get("mindate") or EARLIEST, end=False)
    hi = _day(date_params.get("maxdate") or LATEST, end=True)
    gathered = window(lo, hi, None)
    unique = sorted(set(gathered), key=int)
    if len(unique) != len(gathered):
        raise EntrezError(f"{where}: date/PMID windows overlapped ({len(gathered) - len(unique)} PMIDs twice)")
    if len(unique) != top.count:
        short = top.count - len(unique)
        raise EntrezError(
            f"{where}: PubMed reports Count {top.count} but the {len(slices)} windows it was split into gave "
            f"{len(unique)} PMIDs ({abs(short)} {'missing' if short > 0 else 'more than Count'}); "
            "PubMed may have changed during the run: run the search again"
        )
    return Found(top, unique, slices, exchanges)


def _check_window(res: ESearchResult, where: str) -> None:
    if len(set(res.ids)) != res.count:
        raise EntrezError(f"{where}: PubMed reports {res.count} records but returned "
                          f"{len(set(res.ids))} distinct PMIDs")


def _day(text: str, *, end: bool) -> date:
    """YYYY, YYYY/MM or YYYY/MM/DD as a day: the first of the period, or the last when ``end``."""
    parts = [int(p) for p in text.replace("-", "/").split("/")]
    year, month = parts[0], parts[1] if len(parts) > 1 else (12 if end else 1)
    if len(parts) > 2:
        return date(year, month, parts[2])
    return date(year, month, calendar.monthrange(year, month)[1] if end else 1)


def _ymd(day: date) -> str:
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


def _previously_fetched(snapshot: Snapshot, previous: dict | None, wanted: set[str]) -> dict[str, str]:
    """PMID -> the recorded EFetch exchange that holds it, from the search's previous run."""
    if not previous:
        return {}
    fetched = set(previous.get("fetched_pmids", [])) & wanted
    have: dict[str, str] = {}
    for ex_id in previous.get("exchanges", []):
        ex = snapshot.load(ex_id)
        if body_problem(ex.utility, ex.body, ex.params) is not None:
            continue  # an answer recorded short by an older version: fetched again
        if ex.utility == "efetch":
            for pmid in ex.params.get("id", "").split(","):
                if pmid in fetched:
                    have.setdefault(pmid, ex_id)
    return have


def run_search(transport: Transport, protocol: Protocol, key: str, *, batch_size: int = DEFAULT_BATCH,
               progress: bool = True) -> SearchResult:
    """Run one protocol search: ESearch (split past the cap), EFetch of the records
    the snapshot does not hold yet, in batches, then write its manifest.

    Run again on a snapshot (a living search) it re-runs the ESearch, fetches only
    new PMIDs and reports new and dropped PMIDs against the previous run. A run
    killed mid-fetch and started again reuses every batch already recorded.
    """
    from tqdm.auto import tqdm

    query = protocol.query(key)
    log.info("[%s] %s: %s", key, protocol.search(key).label,
             "searching PubMed" if transport.records else "replaying the recorded search")
    date_params = protocol.dates.params()
    date_run = transport.snapshot.clock()
    where = f"search {key!r}"
    previous = _manifest_or_none(transport.snapshot, key)
    found = find_pmids(transport, query, date_params, where)
    pmids = found.pmids
    have = _previously_fetched(transport.snapshot, previous, set(pmids))
    to_fetch = [p for p in pmids if p not in have]
    fetched = set(have)
    exchanges = found.exchanges + list(dict.fromkeys(have.values()))
    bar = tqdm(total=len(to_fetch), desc=f"fetch {key}", unit="rec", disable=not progress or not to_fetch)
    for i in range(0, len(to_fetch), batch_size):
        batch = to_fetch[i:i + batch_size]
        fp = efetch_params(batch)
        body = transport.request("efetch", fp, reuse=True)
        fetched.update(row["pmid"] for row in iter_pubmed_xml(body, name=f"efetch for search {key!r}"))
        exchanges.append(transport.snapshot.name_of("efetch", fp, body))
        bar.update(len(batch))
    bar.close()
    fetched &= set(pmids)
    if len(fetched) < len(pmids):
        # Counting such a search as done would replay a search without its records forever.
        missing = sorted(set(pmids) - fetched, key=int)
        error = EntrezError if transport.records else SnapshotError
        raise error(f"{where}: EFetch returned no record for {len(missing)} of the {len(pmids)} PMIDs ESearch "
                    f"listed (e.g. PMID {', '.join(missing[:5])}); the search is incomplete"
                    + ("" if transport.records else f" in snapshot {transport.snapshot.root}: run it live again"))
    new = dropped = None
    if previous and transport.records:
        before = set(previous.get("pmids", []))
        new = sorted(set(pmids) - before, key=int)
        dropped = sorted(before - set(pmids), key=int)
    manifest: dict[str, Any] = {
        "key": key,
        "label": protocol.search(key).label,
        "database": protocol.database,
        "query": query,
        "query_translation": found.top.query_translation,
        "date_run": date_run,
        "datetype": date_params.get("datetype"),
        "mindate": date_params.get("mindate"),
        "maxdate": date_params.get("maxdate"),
        "filters": [],
        "count": found.top.count,
        "pmids": pmids,
        "fetched_pmids": sorted(fetched, key=int),
        "not_returned_by_efetch": sorted(set(pmids) - fetched, key=int),
        "warnings": found.top.warnings,
        "webenv": found.top.webenv,
        "exchanges": exchanges,
    }
    if found.slices:
        manifest["split_into_windows"] = found.slices
    if previous is not None and new is not None:
        manifest["changes_since_previous_run"] = {
            "previous_date_run": previous.get("date_run"), "new_pmids": new, "dropped_pmids": dropped}
    if transport.records:
        transport.snapshot.write_manifest(key, manifest)
    else:
        manifest = _check_replay(transport.snapshot, key, manifest)
    return SearchResult(key, query, found.top.count, pmids, manifest, new, dropped)


def _manifest_or_none(snapshot: Snapshot, key: str) -> dict | None:
    return snapshot.manifest(key) if key in snapshot.search_keys() else None


def _check_replay(snapshot: Snapshot, key: str, replayed: dict) -> dict:
    """A replay must reproduce the recorded manifest; return the recorded one (its date_run)."""
    recorded = snapshot.manifest(key)
    for name in ("query", "count", "pmids", "fetched_pmids"):
        if recorded.get(name) != replayed[name]:
            raise SnapshotError(
                f"snapshot {snapshot.root}, search {key!r}: replayed {name} differs from the recorded manifest "
                "(was the protocol changed after the snapshot was recorded?)"
            )
    return recorded


def run_searches(transport: Transport, protocol: Protocol, keys: list[str] | None = None, **kw) -> list[SearchResult]:
    return [run_search(transport, protocol, s.key, **kw) for s in protocol.select(keys)]
