"""Rate limits per source address: a token bucket each, behind nginx's own limit_req."""

from __future__ import annotations

import threading
from dataclasses import dataclass

# A user opens a session a few times a day; a burst of 10 covers retries with a mistyped PIN, and
# 20 a minute is far above any person and far below a certificate-guessing loop.
BURST = 10
PER_MINUTE = 20
_MOST_SOURCES = 4096  # full buckets are forgotten beyond this many sources


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Tokens per source: `burst` at most, refilled at `per_minute`; each request takes one."""

    def __init__(self, burst: int = BURST, per_minute: int = PER_MINUTE) -> None:
        self.burst, self.rate = float(burst), per_minute / 60.0
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, source: str, now: float) -> float | None:
        """None when `source` may go on (a token was taken); else the seconds until it may try again.
        `now` is a monotonic clock reading."""
        with self._lock:
            bucket = self._buckets.get(source)
            if bucket is None:
                self._forget_full(now)
                bucket = self._buckets[source] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Keep memory bounded: a bucket that has refilled holds nothing worth keeping."""
        if len(self._buckets) < _MOST_SOURCES:
            return
        for source, b in list(self._buckets.items()):
            if b.tokens + (now - b.at) * self.rate >= self.burst:
                del self._buckets[source]
