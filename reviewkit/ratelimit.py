"""One pace per web service for every request a process sends.

NCBI allows 3 requests a second per client (IP) without an API key and 10 with
one, so the limit belongs to the process, not to one transport: every live
request waits its turn at ``LIMITER``, whichever transport, search or thread
sends it (a transport can be given its own limiter, as tests do). Bio.Entrez
paces inside its own sending function, which reviewkit does not use.

The JSON APIs state their limits as so many requests per interval
(ClinicalTrials.gov: about 50 a minute per client; Crossref: ``X-Rate-Limit-Limit``
per ``X-Rate-Limit-Interval``, 5 a second in its public pool and 10 in its polite
pool as of 2026): ``WindowLimiter`` keeps exactly that, and lowers its limit to
what a service's headers announce. ``service_limiter`` gives each service one
limiter per process, for the same reason as ``LIMITER``.
"""

from __future__ import annotations

import collections
import re
import threading
import time

NCBI_RATE = 3.0  # requests a second without an API key
NCBI_RATE_WITH_KEY = 10.0
# Spacing a hair wider than 1/rate: the server counts arrivals, which jitter.
_MARGIN = 1.02


class RateLimiter:
    """Requests start at least ``_MARGIN / rate`` seconds after the previous one."""

    def __init__(self, clock=time.monotonic, sleep=time.sleep):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self, rate: float) -> float:
        """Sleep until this request's slot; returns the seconds waited."""
        with self._lock:  # reserve a slot, then sleep outside the lock
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + _MARGIN / rate
        if slot > now:
            self._sleep(slot - now)
        return max(0.0, slot - now)


LIMITER = RateLimiter()


def ncbi_rate(has_api_key: bool) -> float:
    return NCBI_RATE_WITH_KEY if has_api_key else NCBI_RATE


class WindowLimiter:
    """At most ``limit`` requests start within any ``interval`` seconds (a hair wider, ``_MARGIN``)."""

    def __init__(self, limit: int, interval: float, clock=time.monotonic, sleep=time.sleep):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: collections.deque[float] = collections.deque()
        self.configure(limit, interval)

    def configure(self, limit: int, interval: float) -> None:
        """The limit the service documents (announced headers may lower it later)."""
        if limit < 1 or interval <= 0:
            raise ValueError(f"a rate limit needs at least 1 request per positive interval, not {limit}/{interval}")
        with self._lock:
            self.limit, self.interval = int(limit), float(interval)

    def announce(self, limit: str | None, interval: str | None) -> None:
        """Lower the limit to what a service's ``X-Rate-Limit-Limit`` / ``-Interval`` headers say
        (``"5"``, ``"1s"``); headers that are absent, malformed or more generous change nothing."""
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", interval or "")
        if not limit or not limit.strip().isdigit() or not match or int(limit) < 1:
            return
        seconds = float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2] or "s"]
        if seconds <= 0:
            return
        with self._lock:
            if int(limit) / seconds < self.limit / self.interval:
                self.limit, self.interval = int(limit), seconds

    def wait(self) -> float:
        """Sleep until this request may start; returns the seconds waited."""
        with self._lock:  # reserve a start, then sleep outside the lock
            now = self._clock()
            start = max(now, self._starts[-1]) if self._starts else now
            if len(self._starts) >= self.limit:
                start = max(start, self._starts[-self.limit] + self.interval * _MARGIN)
            self._starts.append(start)
            while len(self._starts) > self.limit:
                self._starts.popleft()
        if start > now:
            self._sleep(start - now)
        return max(0.0, start - now)


_SERVICE_LIMITERS: dict[str, WindowLimiter] = {}
_SERVICE_LOCK = threading.Lock()


def service_limiter(name: str, limit: int, interval: float) -> WindowLimiter:
    """The process's limiter for a service, set to the limit it documents."""
    with _SERVICE_LOCK:
        limiter = _SERVICE_LIMITERS.get(name)
        if limiter is None:
            limiter = _SERVICE_LIMITERS[name] = WindowLimiter(limit, interval)
        else:
            limiter.configure(limit, interval)
        return limiter
