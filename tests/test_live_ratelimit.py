"""The process-wide rate limiter: requests from any thread are spaced at 1/rate (plus margin)."""

from __future__ import annotations

import threading
import time

from reviewkit.ratelimit import NCBI_RATE, NCBI_RATE_WITH_KEY, RateLimiter, ncbi_rate


def test_requests_from_many_threads_never_exceed_the_rate():
    limiter = RateLimiter()
    starts: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(4):
            limiter.wait(10.0)
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert len(starts) == 16 and starts[-1] - starts[0] >= 15 / 10
    # what NCBI counts: in any one-second window at most `rate` requests
    assert all(sum(s <= t < s + 1.0 for t in starts) <= 10 for s in starts)


def test_ncbi_limits():
    assert ncbi_rate(False) == NCBI_RATE == 3 and ncbi_rate(True) == NCBI_RATE_WITH_KEY == 10
