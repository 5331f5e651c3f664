"""What the loopback emulators of JSON APIs (ClinicalTrials.gov, Crossref) share: a threaded HTTP
server on 127.0.0.1, a log of every request, a rate limit per client and faults.

Faults are those of the E-utilities emulator that a JSON API can show (``JSON_FAULT_KINDS``): HTTP
500, 502, 503, a spurious 429, a reset connection, a body cut in half and an answer slower than the
client's timeout. They are queued on demand (``inject``) or drawn at random with a fixed seed
(``Faults``), so a sequential client sees the same faults on every run.

A subclass names its utilities (``utility``), answers them (``answer``) and says who is asking
(``identity``: the client, and the pool or key its limit depends on).
"""

from __future__ import annotations

import collections
import gzip
import random
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .emulator import Faults, FaultyHandler

JSON_FAULT_KINDS = ("500", "502", "503", "429", "reset", "truncate", "slow")
#: no random faults; the faults a JSON API can show when some are asked for
NO_FAULTS = Faults(kinds=JSON_FAULT_KINDS)
GZIP_FROM_BYTES = 1024  # servers compress what is worth compressing, when the client accepts gzip


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ApiExchange:
    """One request as the emulator saw it: what tests read to check paging, pools and faults."""

    time: float
    utility: str
    path: str
    params: Mapping[str, str]
    status: int
    fault: str | None
    identity: str


class JsonApiEmulator:
    """Base of the JSON API emulators; use as a context manager, or ``start()``/``stop()``.

    ``rate_limit``: at most ``limit`` requests per ``interval`` seconds per identity (None: no limit);
    over it the answer is :meth:`too_many` (HTTP 429), with ``Retry-After: retry_after`` if given.
    """

    name = "json-api-emulator"
    prefix = "/"

    def __init__(self, *, port: int = 0, rate_limit: tuple[int, float] | None = None,
                 retry_after: float | None = None, faults: Faults = NO_FAULTS):
        unknown = set(faults.kinds) - set(JSON_FAULT_KINDS)
        if unknown:
            raise ValueError(f"faults {sorted(unknown)} do not apply to a JSON API; known: {', '.join(JSON_FAULT_KINDS)}")
        self.port = port
        self.rate_limit = rate_limit
        self.retry_after = retry_after
        self.faults = faults
        self.log: list[ApiExchange] = []
        self._lock = threading.Lock()
        self._rng = random.Random(faults.seed)  # noqa: S311 (reproducible faults)
        self._queued: collections.deque[tuple[str, str | None]] = collections.deque()
        self._windows: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._server: ThreadingHTTPServer | None = None

    # ---- what a subclass provides
    def utility(self, path: str) -> str | None:
        """The utility a path (after ``prefix``) asks for, or None (404)."""
        raise NotImplementedError

    def answer(self, utility: str, path: str, params: dict[str, str], headers: Mapping[str, str]) -> Answer:
        raise NotImplementedError

    def identity(self, client: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
        return client

    def limit_for(self, identity: str) -> tuple[int, float] | None:
        return self.rate_limit

    def too_many(self, identity: str, limit: tuple[int, float]) -> Answer:
        return Answer(429, "text/plain", b"Too Many Requests\n")

    def extra_headers(self, identity: str) -> dict[str, str]:
        return {}

    # ---- faults and the log
    def inject(self, kind: str, *, utility: str | None = None, times: int = 1) -> None:
        """Queue a fault for the next ``times`` requests (to ``utility`` if given)."""
        if kind not in JSON_FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(JSON_FAULT_KINDS)}")
        with self._lock:
            self._queued.extend([(kind, utility)] * times)

    def _pick_fault(self, utility: str) -> str | None:
        with self._lock:
            for i, (kind, util) in enumerate(self._queued):
                if util in (None, utility):
                    del self._queued[i]
                    return kind
            if self.faults.rate and self._rng.random() < self.faults.rate:
                return self._rng.choice(self.faults.kinds) if self.faults.kinds else None
        return None

    def _over_limit(self, identity: str) -> tuple[int, float] | None:
        limit = self.limit_for(identity)
        if limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            window = self._windows[identity]
            while window and now - window[0] >= limit[1]:
                window.popleft()
            window.append(now)
            return limit if len(window) > limit[0] else None

    def _record(self, utility, path, params, status, fault, identity) -> None:
        with self._lock:
            self.log.append(ApiExchange(time.time(), utility, path, dict(params), status, fault, identity))

    def requests(self, utility: str | None = None) -> list[ApiExchange]:
        with self._lock:
            return [e for e in self.log if utility in (None, e.utility)]

    # ---- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def start(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _make_handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _make_handler(emu: JsonApiEmulator):
    class Handler(FaultyHandler):
        server_version = emu.name

        def do_GET(self):
            split = urlsplit(self.path)
            path = split.path[len(emu.prefix):] if split.path.startswith(emu.prefix) else None
            params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            utility = emu.utility(path) if path is not None else None
            identity = emu.identity(self.client_address[0], params, headers)
            if utility is None:
                return self._send(Answer(404, "text/plain", b"Not Found\n"), "unknown", params, None, identity)
            limit = emu._over_limit(identity)
            fault = None if limit else emu._pick_fault(utility)
            if limit or fault == "429":
                return self._send(emu.too_many(identity, limit or emu.limit_for(identity) or (0, 1.0)), utility,
                                  params, fault or "rate-limit", identity, retry=True)
            if fault in ("500", "502", "503"):
                body = f"<html><body><h1>{fault} Server Error</h1>A transient problem.</body></html>".encode()
                return self._send(Answer(int(fault), "text/html", body), utility, params, fault, identity)
            if fault == "reset":
                emu._record(utility, path, params, 0, fault, identity)
                # SO_LINGER 0 makes close() send RST: the client sees "connection reset".
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            answer = emu.answer(utility, path or "", params, headers)
            if fault == "slow":
                time.sleep(emu.faults.slow_seconds)
            gzipped = "gzip" in headers.get("accept-encoding", "") and len(answer.body) >= GZIP_FROM_BYTES
            self._send(answer, utility, params, fault, identity, truncate=fault == "truncate", gzipped=gzipped)

        def _send(self, answer: Answer, utility, params, fault, identity, *, truncate=False, gzipped=False,
                  retry=False):
            emu._record(utility, urlsplit(self.path).path, params, answer.status, fault, identity)
            body = gzip.compress(answer.body, mtime=0) if gzipped else answer.body
            headers = {**emu.extra_headers(identity), **(answer.headers or {})}
            if retry and emu.retry_after is not None:
                headers["Retry-After"] = f"{emu.retry_after:g}"
            if gzipped:
                headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding", **headers}
            self.write_answer(answer.status, answer.content_type, body, headers, truncate=truncate)

    return Handler
