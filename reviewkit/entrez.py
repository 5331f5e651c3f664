"""PubMed searches through Bio.Entrez, recorded in a snapshot; live or replayed.

One code path: ``run_search`` asks a *transport* for E-utilities responses.
``LiveTransport`` performs the request with Bio.Entrez and records it in the
snapshot; ``ReplayTransport`` answers from the snapshot and fails loudly,
naming the request, when something was never recorded.

Choices that shape this module:

* ESearch runs with ``usehistory=y`` (the manifest keeps PubMed's WebEnv for
  provenance) and ``retmax=9999``, PubMed's retrieval cap.
* EFetch is by PMID list in batches (Bio.Entrez POSTs lists of 200 or more),
  not by WebEnv: a batch is then identified by its PMIDs, so a resumed or
  replayed run reuses it whatever WebEnv the server hands out, and history
  expiry cannot break a long fetch.
* Credentials come from ``NCBI_EMAIL`` / ``NCBI_API_KEY`` or arguments, go to
  NCBI with each request, and are never stored, logged or put in a message.
* ``REVIEWKIT_EUTILS_URL`` replaces ``https://eutils.ncbi.nlm.nih.gov/entrez/eutils/``
  (proxies, the loopback emulator). Bio.Entrez hard-codes that URL, so the
  request is rewritten by a urllib handler installed only for the call.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol as TypingProtocol
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from Bio import Entrez
from lxml import etree

from .errors import EntrezError, SnapshotError
from .protocol import Protocol
from .pubmed import iter_pubmed_xml
from .snapshot import Snapshot, clean_params, exchange_id, utcnow

NCBI_EUTILS = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
PUBMED_RETRIEVAL_CAP = 9999
DEFAULT_BATCH = 500
TOOL = "reviewkit"


def eutils_base() -> str:
    base = os.environ.get("REVIEWKIT_EUTILS_URL", "").strip() or NCBI_EUTILS
    return base if base.endswith("/") else base + "/"


@dataclass(frozen=True)
class Credentials:
    """Who we are to NCBI. ``repr`` never shows the values."""

    email: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, email: str | None = None, api_key: str | None = None) -> "Credentials":
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


class Transport(TypingProtocol):
    snapshot: Snapshot
    records: bool  # True when responses are recorded (live); False when replayed

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes: ...


# -- replay -----------------------------------------------------------------
class ReplayTransport:
    """Answers from the snapshot only; writes nothing."""

    records = False

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes:
        exchange = self.snapshot.get(utility, params)
        if exchange is None:
            shown = ", ".join(f"{k}={_short(v)}" for k, v in clean_params(params).items())
            raise SnapshotError(
                f"offline: snapshot {self.snapshot.root} has no recorded {utility} request ({shown}); "
                "run the search live to record it"
            )
        return exchange.body


def _short(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + f"... ({len(value)} chars)"


# -- live -------------------------------------------------------------------
class _Redirect(urllib.request.BaseHandler):
    """Rewrites NCBI's E-utilities URL to ``base`` and sets a timeout; remembers the method."""

    handler_order = 100  # before HTTPSHandler sets the Host header

    def __init__(self, base: str, timeout: float):
        self.base = base
        self.timeout = timeout
        self.last_method = "GET"

    def _rewrite(self, req):
        if req.full_url.startswith(NCBI_EUTILS) and self.base != NCBI_EUTILS:
            req.full_url = self.base + req.full_url[len(NCBI_EUTILS):]
        req.timeout = self.timeout
        self.last_method = req.get_method()
        return req

    https_request = http_request = _rewrite


TRANSIENT_HTTP = {429, 500, 502, 503, 504}


class LiveTransport:
    """Performs requests with Bio.Entrez and records each one in the snapshot.

    Bio.Entrez's own retries are switched off (they retry at once, without
    back-off); this loop retries transient failures with exponential back-off
    and jitter, honouring Retry-After, up to ``max_attempts``. Bio.Entrez's
    own pacing (0.37 s between requests, 0.1 s with an API key) keeps NCBI's
    3/s and 10/s limits across every call in the process.
    """

    records = True

    def __init__(self, snapshot: Snapshot, credentials: Credentials | None = None, *,
                 base_url: str | None = None, timeout: float = 60.0, max_attempts: int = 5,
                 backoff: float = 1.0):
        self.snapshot = snapshot
        self.credentials = credentials or Credentials.from_env()
        self.base = base_url or eutils_base()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff

    @contextmanager
    def _opener(self) -> Iterator[_Redirect]:
        redirect = _Redirect(self.base, self.timeout)
        handlers: list = [redirect]
        if urlsplit(self.base).hostname in ("127.0.0.1", "localhost", "::1"):
            handlers.append(urllib.request.ProxyHandler({}))  # loopback never goes through a proxy
        previous = urllib.request._opener
        urllib.request.install_opener(urllib.request.build_opener(*handlers))
        try:
            yield redirect
        finally:
            urllib.request.install_opener(previous)

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes:
        if reuse:
            recorded = self.snapshot.get(utility, params)
            if recorded is not None:
                return recorded.body
        Entrez.max_tries = 1
        call = getattr(Entrez, utility)
        full = {**params, **self.credentials.params()}
        last_problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            wait = None
            try:
                with self._opener() as redirect:
                    handle = call(**full)
                    body = handle.read()
                    handle.close()
                if isinstance(body, str):
                    body = body.encode("utf-8")
                return self.snapshot.put(utility, params, body, method=redirect.last_method).body
            except HTTPError as exc:
                last_problem = f"HTTP {exc.code}"
                if exc.code not in TRANSIENT_HTTP:
                    raise EntrezError(f"{utility} failed with HTTP {exc.code} ({_describe(params)})") from None
                wait = _retry_after(exc)
            except (URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                last_problem = type(exc).__name__
            if attempt < self.max_attempts:
                time.sleep(wait if wait is not None else self.backoff * 2 ** (attempt - 1) * (1 + random.random()))
        raise EntrezError(
            f"{utility} failed {self.max_attempts} times, last with {last_problem} ({_describe(params)})"
        )


def _retry_after(exc: HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _describe(params: dict[str, str]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in clean_params(params).items())


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
        raise EntrezError(f"{where}: PubMed reported an error: {error.strip()}")
    errors = [f"{e.tag}: {e.text}" for e in root.findall("ErrorList/*")]
    if errors:
        # PhraseNotFound / FieldNotFound: PubMed silently ran a different query than written.
        raise EntrezError(f"{where}: PubMed could not run the query as written: {'; '.join(errors)}")
    count = root.findtext("Count")
    if count is None:
        raise EntrezError(f"{where}: ESearch answer has no <Count>")
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

    @property
    def retrieved(self) -> int:
        return len(self.manifest["fetched_pmids"])


def esearch_params(query: str, date_params: dict[str, str]) -> dict[str, str]:
    return {"db": "pubmed", "term": query, "usehistory": "y", "retstart": "0",
            "retmax": str(PUBMED_RETRIEVAL_CAP), **date_params}


def efetch_params(pmids: Iterable[str]) -> dict[str, str]:
    return {"db": "pubmed", "id": ",".join(pmids), "retmode": "xml"}


def run_search(transport: Transport, protocol: Protocol, key: str, *, batch_size: int = DEFAULT_BATCH,
               progress: bool = True) -> SearchResult:
    """Run one protocol search: ESearch, EFetch in batches, then write its manifest."""
    from tqdm.auto import tqdm

    query = protocol.query(key)
    date_params = protocol.dates.params()
    date_run = transport.snapshot.clock()
    params = esearch_params(query, date_params)
    found = parse_esearch(transport.request("esearch", params), f"search {key!r}")
    if found.count > len(found.ids):
        raise EntrezError(
            f"search {key!r}: PubMed reports {found.count} records but returned {len(found.ids)}; "
            f"searches above PubMed's {PUBMED_RETRIEVAL_CAP:,}-record cap must be split"
        )
    pmids = sorted(set(found.ids), key=int)
    batches = [pmids[i:i + batch_size] for i in range(0, len(pmids), batch_size)]
    fetched: list[str] = []
    exchanges = [exchange_id("esearch", params)]
    bar = tqdm(total=len(pmids), desc=f"fetch {key}", unit="rec", disable=not progress or not pmids)
    for batch in batches:
        fp = efetch_params(batch)
        body = transport.request("efetch", fp, reuse=True)
        got = [row["pmid"] for row in iter_pubmed_xml(body, name=f"efetch for search {key!r}")]
        fetched.extend(got)
        exchanges.append(exchange_id("efetch", fp))
        bar.update(len(batch))
    bar.close()
    missing = sorted(set(pmids) - set(fetched), key=int)
    manifest = {
        "key": key,
        "label": protocol.search(key).label,
        "database": protocol.database,
        "query": query,
        "query_translation": found.query_translation,
        "date_run": date_run,
        "datetype": date_params.get("datetype"),
        "mindate": date_params.get("mindate"),
        "maxdate": date_params.get("maxdate"),
        "filters": [],
        "count": found.count,
        "pmids": pmids,
        "fetched_pmids": sorted(set(fetched), key=int),
        "not_returned_by_efetch": missing,
        "warnings": found.warnings,
        "webenv": found.webenv,
        "exchanges": exchanges,
    }
    if transport.records:
        transport.snapshot.write_manifest(key, manifest)
    else:
        manifest = _check_replay(transport.snapshot, key, manifest)
    return SearchResult(key, query, found.count, pmids, manifest)


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
