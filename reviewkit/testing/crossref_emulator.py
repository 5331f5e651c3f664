"""A loopback Crossref REST API server: reviewkit's Crossref lookups run against it over real HTTP.

Built from the real responses recorded in ``tests/fixtures/crossref/`` and their protocol notes
(``protocol.md`` there):

* ``GET /works/{doi}`` (the DOI raw or ``%2F``-encoded, any case): the work in the envelope
  ``{"status":"ok","message-type":"work",...}``; an unknown DOI is a 404 with the recorded
  ``text/plain`` body ``Resource not found.``.
* ``GET /works``: ``query.bibliographic`` and ``query`` rank works by the words they share with the
  title, authors, container title and year (a crude stand-in for Crossref's relevance, enough to put
  the work a reference means first); ``filter=updates:{doi}`` (repeatable, OR-ed) gives the notices
  whose ``update-to`` names the DOI (the filter is documented; no answer to it was recorded, so its
  envelope is the recorded list's); ``rows`` (default 20, at most 1,000, else the recorded 400);
  ``cursor``: ``*`` starts a walk, and, as recorded, the ``next-cursor`` is the same string on every
  page of a walk, the server keeping the position; an unknown cursor is the recorded 404
  ``cursor-invalid``. ``total-results`` is on every page.
* Pools: a ``mailto`` in the ``User-Agent`` (or a ``mailto`` parameter) puts a request in the
  polite pool; the recorded headers are sent (``x-api-pool``, ``x-rate-limit-limit`` 5 or 10,
  ``x-rate-limit-interval`` ``1s``, ``x-concurrency-limit``), and ``rate_limit=True`` answers 429
  over them (no 429 was ever recorded: its body is the historic HTML one).

Works are Crossref ``work`` messages: the recorded ones (``recorded_works``), nothing invented.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .emulator import Faults
from .json_server import NO_FAULTS, Answer, JsonApiEmulator

POOLS = {"public": (5, 1.0, 1), "polite": (10, 1.0, 3)}  # limit, interval (s), concurrency: recorded 2026
MAX_ROWS = 1000
NOT_FOUND = Answer(404, "text/plain", b"Resource not found.")


def recorded_works(folder: str | Path) -> list[dict]:
    """Every work of the recorded answers in ``folder`` (singletons and list items), each once by DOI."""
    works: dict[str, dict] = {}
    for path in sorted(Path(folder).glob("*.json")):
        if path.name.endswith(".meta.json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        message = data.get("message") if isinstance(data, dict) else None
        items = [message] if data.get("message-type") == "work" else (
            message.get("items", []) if isinstance(message, dict) else [])
        for work in items:
            if isinstance(work, dict) and isinstance(work.get("DOI"), str):
                works.setdefault(work["DOI"].lower(), work)
    return list(works.values())


def _words(value: Any) -> set[str]:
    if isinstance(value, list):
        return set().union(*(_words(v) for v in value)) if value else set()
    if isinstance(value, Mapping):
        return _words([value.get("given"), value.get("family"), value.get("name")])
    return {w for w in re.findall(r"[a-z0-9]+", str(value or "").lower()) if len(w) > 2}


def _work_words(work: Mapping) -> set[str]:
    year = ((work.get("issued") or {}).get("date-parts") or [[None]])[0][0]
    return _words([*(work.get("title") or []), *(work.get("author") or []), *(work.get("container-title") or []),
                   str(year or "")])


def _validation(kind: str, value: str, message: str) -> Answer:
    body = {"status": "failed", "message-type": "validation-failure",
            "message": [{"type": kind, "value": value, "message": message}]}
    return Answer(400, "application/json", json.dumps(body).encode())


class CrossrefEmulator(JsonApiEmulator):
    """The Crossref REST API emulator (see the module doc). ``rate_limit=True``: each pool's
    recorded limit is enforced (429 over it)."""

    name = "crossref-emulator"
    prefix = "/"

    def __init__(self, works: Iterable[Mapping] = (), *, port: int = 0, rate_limit: bool = False,
                 retry_after: float | None = None, faults: Faults = NO_FAULTS):
        super().__init__(port=port, rate_limit=None, retry_after=retry_after, faults=faults)
        self.enforce_pools = rate_limit
        self._works: dict[str, Mapping] = {}
        self._walks: dict[str, tuple[str, int]] = {}  # cursor -> (what it walks, items already given)
        self._walk_lock = threading.Lock()
        self.add_works(works)

    def add_works(self, works: Iterable[Mapping]) -> None:
        with self._lock:
            for work in works:
                self._works[str(work["DOI"]).lower()] = work

    # -- pools ---------------------------------------------------------------------
    def identity(self, client: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
        polite = "mailto:" in headers.get("user-agent", "") or bool(params.get("mailto"))
        return f"{client} {'polite' if polite else 'public'}"

    def limit_for(self, identity: str) -> tuple[int, float] | None:
        limit, interval, _ = POOLS[identity.rsplit(" ", 1)[1]]
        return (limit, interval) if self.enforce_pools else None

    def too_many(self, identity: str, limit: tuple[int, float]) -> Answer:
        return Answer(429, "text/html", b"<html><body><h1>429 Too Many Requests</h1>\nYou have sent too many "
                                        b"requests in a given amount of time.\n</body></html>")

    def extra_headers(self, identity: str) -> dict[str, str]:
        pool = identity.rsplit(" ", 1)[1]
        limit, interval, concurrency = POOLS[pool]
        return {"x-api-pool": pool, "x-rate-limit-limit": str(limit), "x-rate-limit-interval": f"{interval:g}s",
                "x-concurrency-limit": str(concurrency)}

    # -- routes --------------------------------------------------------------------
    def utility(self, path: str) -> str | None:
        path = unquote(path).strip("/")
        if path == "works":
            return "works"
        if re.fullmatch(r"works/10\.\d{4,9}/\S+", path, re.I):
            return "work"
        return None

    def answer(self, utility: str, path: str, params: dict[str, str], headers: Mapping[str, str]) -> Answer:
        if utility == "work":
            if any(k.startswith("query") for k in params):
                return _validation("parameter-not-allowed", "query.*", "This route does not support field query "
                                                                       "parameters")
            doi = unquote(path).strip("/").split("/", 1)[1].lower()
            with self._lock:
                work = self._works.get(doi)
            if work is None:
                return NOT_FOUND
            return _ok("work", work)
        return self._list(params)

    def _matching(self, params: Mapping[str, str]) -> list[Mapping]:
        with self._lock:
            works = list(self._works.values())
        targets = [f.split(":", 1)[1].lower() for f in params.get("filter", "").split(",") if f.startswith("updates:")]
        if targets:
            works = [w for w in works if any(str(u.get("DOI", "")).lower() in targets
                                             for u in w.get("update-to") or [] if isinstance(u, Mapping))]
        query = params.get("query.bibliographic") or params.get("query")
        if query:
            asked = _words(query)
            scored = [(len(asked & _work_words(w)) / max(1, len(asked)), w) for w in works]
            return [w for s, w in sorted(scored, key=lambda p: (-p[0], str(p[1]["DOI"]))) if s >= 0.3]
        return sorted(works, key=lambda w: str(w["DOI"]))

    def _list(self, params: dict[str, str]) -> Answer:
        try:
            rows = int(params.get("rows", "20"))
        except ValueError:
            rows = -1
        if not 0 <= rows <= MAX_ROWS:
            return _validation("integer-not-valid", params.get("rows", ""),
                               f"Integer specified as {params.get('rows')} but must be a positive integer less than "
                               f"or equal to {MAX_ROWS}.")
        found = self._matching(params)
        cursor = params.get("cursor")
        start, next_cursor = 0, None
        if cursor is not None:
            signature = json.dumps(sorted((k, v) for k, v in params.items() if k not in ("cursor", "_page")))
            with self._walk_lock:
                if cursor == "*":
                    next_cursor = "DnF1ZXJ5VGhlbkZldGNo" + uuid.uuid4().hex  # the recorded scroll ids' prefix
                    self._walks[next_cursor] = (signature, 0)
                elif cursor in self._walks and self._walks[cursor][0] == signature:
                    next_cursor = cursor
                    start = self._walks[cursor][1]
                else:
                    body = {"status": "failed", "message-type": "resource-failure",
                            "message": [{"type": "cursor-invalid", "value": cursor,
                                         "message": "Cursor specified but it is invalid"}]}
                    return Answer(404, "application/json", json.dumps(body).encode())
                self._walks[next_cursor] = (signature, start + rows)
        items = found[start:start + rows]
        message: dict[str, Any] = {"facets": {}, "total-results": len(found), "items": items, "items-per-page": rows,
                                   "query": {"start-index": 0, "search-terms": params.get("query.bibliographic")
                                             or params.get("query")}}
        if next_cursor:
            message["next-cursor"] = next_cursor
        return _ok("work-list", message)


def _ok(kind: str, message: Any) -> Answer:
    body = {"status": "ok", "message-type": kind, "message-version": "1.0.0", "message": message}
    return Answer(200, "application/json", json.dumps(body, ensure_ascii=False).encode())
