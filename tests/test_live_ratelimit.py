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
        for _ in range(5):
            limiter.wait(50.0)
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 20 and min(gaps) >= 1 / 50 - 0.002
    # in any one-second window at most `rate` requests start
    assert all(sum(s <= t < s + 1.0 for t in starts) <= 50 for s in starts)


def test_ncbi_limits():
    assert ncbi_rate(False) == NCBI_RATE == 3 and ncbi_rate(True) == NCBI_RATE_WITH_KEY == 10
