"""One pace for every E-utilities request a process sends.

NCBI allows 3 requests a second per client (IP) without an API key and 10 with
one, so the limit belongs to the process, not to one transport: every live
request waits its turn at ``LIMITER``, whichever transport, search or thread
sends it (a transport can be given its own limiter, as tests do). Bio.Entrez
paces inside its own sending function, which reviewkit does not use.
"""

from __future__ import annotations

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
