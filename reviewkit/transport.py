"""Requests to the web services a review uses, recorded in a snapshot: live or replayed, one shape for all.

Every service (NCBI E-utilities in ``reviewkit.entrez``; ClinicalTrials.gov and
Crossref, JSON APIs, here) is reached through a *transport* with one method,
``request(utility, params) -> bytes``:

* a live transport sends the request, retries what is worth retrying, and
  records every good answer in the snapshot (``Snapshot.put``: parameters
  without credentials, the raw bytes, status and time);
* ``ReplayTransport`` answers from the snapshot only and fails loudly, naming
  the request, when it was never recorded.

``send_with_retries`` is the one retry loop: exponential back-off with jitter
(``backoff`` × 2^n × [1, 2), at most ``max_backoff``) on 429, 5xx, timeouts,
refused or reset connections, truncated bodies and bodies the service's own
check refuses; a ``Retry-After`` header (seconds or an HTTP date) wins over
the back-off. Each retry is logged; after ``max_attempts`` an error names the
request (never its credentials: messages show only the stored parameters).

``ApiTransport`` is the live transport of a JSON API (:class:`Service`): its
base URL can be replaced by an environment variable (proxies, the loopback
emulators), its requests are paced by the service's limiter (``ratelimit``),
and a contact address, when the service asks for one, travels in the
``User-Agent`` header, never in a recorded parameter. A 404 is an answer, not
a failure ("no such DOI"): it is recorded and raised as :class:`NotFound`, live
and in replay alike.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import socket
import time
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol as TypingProtocol
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit

from . import __version__
from .errors import ReviewkitError, SnapshotError
from .ratelimit import WindowLimiter, service_limiter
from .snapshot import Snapshot, clean_params

log = logging.getLogger(__name__)

TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})
# What can go wrong on the wire short of an HTTP status: refused/reset connections,
# timeouts, truncated bodies (IncompleteRead).
NETWORK_ERRORS = (URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException)
#: an answer may inflate (gzip) to at most this many bytes: a JSON page of 1,000 studies is a few MB.
MAX_BODY_BYTES = 256 * 2**20
LOCAL_PREFIX = "_"  # parameters starting with this are reviewkit's own: recorded, never sent


class Transport(TypingProtocol):
    snapshot: Snapshot
    records: bool  # True when responses are recorded (live); False when replayed

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes: ...


class NotFound(ReviewkitError):
    """The service answered "not found" (HTTP 404) to a request: an answer, recorded like any other."""

    def __init__(self, utility: str, params: Mapping[str, str]):
        self.utility, self.params = utility, dict(params)
        super().__init__(f"{utility}: not found ({describe(params)})")


def short(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + f"... ({len(value)} chars)"


def describe(params: Mapping[str, str]) -> str:
    """A request's stored parameters for a message: credentials never, long values cut."""
    return ", ".join(f"{k}={short(v)}" for k, v in clean_params(dict(params)).items())


# -- replay -----------------------------------------------------------------
class ReplayTransport:
    """Answers from the snapshot only; writes nothing.

    Of several recorded answers to one request, the one a manifest lists is replayed
    (a living update that failed half-way recorded answers no manifest lists yet).
    """

    records = False

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self._listed: set[str] | None = None

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes:
        if self._listed is None:
            self._listed = self.snapshot.referenced()
        exchange = self.snapshot.get(utility, params, among=self._listed)
        if exchange is None:
            raise SnapshotError(
                f"offline: snapshot {self.snapshot.root} has no recorded {utility} request ({describe(params)}); "
                "run the search live to record it"
            )
        if exchange.status == 404:
            raise NotFound(utility, params)
        return exchange.body


# -- the retry loop ----------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for an answer and how often to ask again."""

    timeout: float = 60.0
    max_attempts: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0


def retry_after(exc: HTTPError) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number, or an HTTP date), or None."""
    value = exc.headers.get("Retry-After") if exc.headers else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_body(exc: HTTPError) -> bytes:
    try:
        return exc.read(MAX_BODY_BYTES)
    except (OSError, http.client.HTTPException):
        return b""


def send_with_retries(send: Callable[[], bytes], *, name: str, shown: str, policy: RetryPolicy,
                      problem: Callable[[bytes], str | None], error: type[ReviewkitError],
                      transient: Callable[[HTTPError], bool] = lambda exc: exc.code in TRANSIENT_HTTP,
                      answers: frozenset[int] = frozenset()) -> tuple[int, bytes]:
    """``(status, body)`` of the first usable answer to ``send()``, retried as the module doc says.

    ``problem(body)`` says why a 200 answer cannot be used (and is asked for again), or None.
    ``answers`` are HTTP statuses that are answers, not failures (404 "no such record").
    Another status that is not ``transient`` fails at once. ``shown`` describes the request in messages.
    """
    last: str | None = "no attempt made"
    for attempt in range(1, policy.max_attempts + 1):
        wait = None
        try:
            body = send()
            last = problem(body)
            if last is None:
                return 200, body
        except HTTPError as exc:
            if exc.code in answers:
                return exc.code, _error_body(exc)
            # Only the status goes into messages: the URL may carry credentials.
            last = f"HTTP {exc.code}"
            if not transient(exc):
                raise error(f"{name} failed with HTTP {exc.code} ({shown})") from None
            wait = retry_after(exc)
        except NETWORK_ERRORS as exc:
            last = type(exc).__name__
        if attempt < policy.max_attempts:
            delay = policy.backoff * 2 ** (attempt - 1) * (1 + random.random())  # noqa: S311 (jitter, not a secret)
            pause = min(policy.max_backoff, wait if wait is not None else delay)
            log.warning("%s: %s; retry %d of %d in %.1f s%s (%s)", name, last, attempt, policy.max_attempts - 1,
                        pause, " (Retry-After)" if wait is not None else "", shown)
            time.sleep(pause)
    raise error(f"{name} failed {policy.max_attempts} times, last with {last} ({shown})")


def opener_for(base: str) -> urllib.request.OpenerDirector:
    """A urllib opener of the transport's own; loopback addresses never go through a proxy."""
    handlers: list = []
    if urlsplit(base).hostname in ("127.0.0.1", "localhost", "::1"):
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


# -- JSON APIs -----------------------------------------------------------------
class ServiceError(ReviewkitError):
    """A web service (ClinicalTrials.gov, Crossref) answered with an error, or kept failing."""


@dataclass(frozen=True)
class Service:
    """A JSON API: its name, default base URL and the variable that replaces it, the limit it
    sets (``limit`` requests per ``interval`` seconds), and its utilities as paths under the base
    (``{name}`` in a path is filled from the parameter of that name, which is then not sent as a
    query parameter but stays part of the recorded request)."""

    name: str
    default_base: str
    env: str
    limit: int
    interval: float
    paths: Mapping[str, str] = field(default_factory=dict)

    def base(self) -> str:
        base = os.environ.get(self.env, "").strip() or self.default_base
        return base if base.endswith("/") else base + "/"

    def url(self, base: str, utility: str, params: Mapping[str, str]) -> str:
        try:
            template = self.paths[utility]
        except KeyError:
            raise ValueError(f"{self.name} has no utility {utility!r}") from None
        in_path = {k: v for k, v in params.items() if "{" + k + "}" in template}
        path = template.format(**{k: quote(str(v), safe="/") for k, v in in_path.items()})
        query = {k: v for k, v in params.items() if k not in in_path and not k.startswith(LOCAL_PREFIX)}
        return base + path + (("?" + urlencode(query)) if query else "")


def json_problem(body: bytes) -> str | None:
    """Why a 200 answer of a JSON API cannot be used (truncated, not JSON, not an object), or None."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return f"a body that is not valid JSON ({type(exc).__name__}; {len(body)} bytes)"
    return None if isinstance(value, dict) else "a JSON answer that is not an object"


def _inflate(data: bytes, name: str) -> bytes:
    """A gzip body inflated, refused past ``MAX_BODY_BYTES`` (a decompression bomb)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_BODY_BYTES)
    except zlib.error as exc:
        raise http.client.IncompleteRead(b"", None) from exc  # damaged: ask again
    if inflater.unconsumed_tail:
        raise ServiceError(f"{name}: refused, the gzip answer inflates past {MAX_BODY_BYTES // 2**20} MiB")
    return out


class ApiTransport:
    """Sends a JSON API's requests and records each answer in the snapshot (see the module doc).

    Parameters
    ----------
    snapshot : Snapshot
        Where every answer is recorded.
    service : Service
        The API: base URL (``base_url`` or its environment variable), utilities, rate limit.
    contact : str, optional
        An address the service may reach the user at (Crossref's "polite pool"); sent in the
        ``User-Agent`` header only, never recorded, logged or shown.
    limiter : WindowLimiter, optional
        Default: the process's limiter for this service (its limit is the service's, lowered to
        what the service's ``X-Rate-Limit-*`` headers announce).
    """

    records = True

    def __init__(self, snapshot: Snapshot, service: Service, *, base_url: str | None = None,
                 contact: str | None = None, timeout: float = 60.0, max_attempts: int = 6, backoff: float = 1.0,
                 max_backoff: float = 60.0, limiter: WindowLimiter | None = None):
        self.snapshot = snapshot
        self.service = service
        self.base = base_url or service.base()
        if not self.base.endswith("/"):
            self.base += "/"
        if urlsplit(self.base).scheme not in ("http", "https"):
            raise ServiceError(f"{service.name}: base URL {short(self.base)} is not http or https (see {service.env})")
        self._contact = contact
        self.timeout, self.max_attempts, self.backoff, self.max_backoff = timeout, max_attempts, backoff, max_backoff
        self.limiter = limiter or service_limiter(service.name, service.limit, service.interval)
        self._opener = opener_for(self.base)

    def __repr__(self) -> str:
        return f"ApiTransport({self.service.name!r}, {self.base!r})"  # never the contact address

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.timeout, self.max_attempts, self.backoff, self.max_backoff)

    def _headers(self) -> dict[str, str]:
        agent = f"reviewkit/{__version__} (https://pypi.org/project/reviewkit/"
        agent += f"; mailto:{self._contact})" if self._contact else ")"
        return {"User-Agent": agent, "Accept": "application/json", "Accept-Encoding": "gzip"}

    def _send(self, url: str, name: str) -> bytes:
        waited = self.limiter.wait()
        if waited > 1:
            log.info("%s: waited %.1f s for the %s rate limit", name, waited, self.service.name)
        request = urllib.request.Request(url, headers=self._headers())  # noqa: S310 (the base is http(s), checked)
        with self._opener.open(request, timeout=self.timeout) as response:
            body = response.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise ServiceError(f"{name}: refused, the answer is larger than {MAX_BODY_BYTES // 2**20} MiB")
            self.limiter.announce(response.headers.get("X-Rate-Limit-Limit"),
                                  response.headers.get("X-Rate-Limit-Interval"))
            if (response.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = _inflate(body, name)
        return body

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes:
        if reuse:
            recorded = self.snapshot.get(utility, params)
            if recorded is not None:
                if recorded.status == 404:
                    raise NotFound(utility, params)
                return recorded.body
        url = self.service.url(self.base, utility, params)
        status, body = send_with_retries(
            lambda: self._send(url, utility), name=utility, shown=describe(params), policy=self.policy,
            problem=json_problem, error=ServiceError, answers=frozenset({404}))
        self.snapshot.put(utility, params, body, status=status)
        if status == 404:
            raise NotFound(utility, params)
        return body
