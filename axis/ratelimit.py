"""Per-agency request limits: token buckets, pure values with the clock passed in.

One agency's runaway client (a loop that re-sends, a poller without a pause) must not take the
axis from the other 157. Each agency has a bucket that holds at most ``burst`` tokens and
refills at ``rate`` tokens a second; a request takes one, and a request that finds the bucket
empty is refused with ``429 rate_limited`` and told when a token will be there. The state is
one float pair per agency that has called, so memory is bounded by the registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # the clock reading when ``tokens`` was last brought up to date


class RateLimiter:
    """Token buckets keyed by agency: ``rate`` requests a second, ``burst`` at once."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if not (rate > 0 and burst >= 1):
            raise ValueError(f"rate limit: need rate > 0 and burst >= 1, got {rate}/{burst}")
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> float:
        """Take a token for ``key`` at ``now``: 0.0 when the request may go, else the wait.

        The wait is the time until one token is back, so a caller that waits exactly that long
        (and sends nothing meanwhile) gets through. A refused request takes nothing: clients
        that retry too early do not push their own wait further out.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        elif now > bucket.at:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def retry_after_header(wait: float) -> str:
    """``Retry-After`` in whole seconds (RFC 9110 §10.2.3), rounded up and at least 1."""
    return str(max(1, math.ceil(wait)))
