"""When to try a push again, and when to stop: pure values, no clock, no I/O.

``RetryPolicy`` is exponential backoff with *full jitter* (AWS Architecture Blog, "Exponential
Backoff And Jitter"): after the n-th failure in a row the next try waits a uniformly random
time in ``[0, min(cap, base * 2**(n-1))]``. Full jitter spreads the retries of many deliveries
that failed together (an agency's server went down) instead of bringing them back in waves.
A delivery is given up (``dead``) once ``max_age`` seconds have passed since its first try;
the last try is placed at that deadline rather than beyond it.

``Breaker`` is a per-endpoint circuit breaker: after ``threshold`` failures in a row the
endpoint is only *probed*, one request at a time after a cooldown, while its queue waits; a
probe that succeeds closes it again. The randomness and the time are passed in, so both are
property-tested without sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

# ceilings double until this many failures; beyond it 2**n would only overflow
_MAX_DOUBLINGS = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a cap and a maximum age."""

    base: float = 10.0  # the first retry comes within this many seconds
    cap: float = 3600.0  # never more than this many seconds between tries
    max_age: float = 259200.0  # seconds after the first try when the delivery is given up

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base and self.max_age >= 0):
            raise ValueError(
                f"push retry timing: need 0 < base <= cap and max_age >= 0, got base={self.base}"
                f" cap={self.cap} max_age={self.max_age}"
            )

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` failures in a row (at least one)."""
        n = max(1, failures)
        if n > _MAX_DOUBLINGS:
            return self.cap
        return min(self.cap, self.base * 2.0 ** (n - 1))

    def delay(self, failures: int, draw: float) -> float:
        """The wait after ``failures`` failures, for a uniform ``draw`` in ``[0, 1)``."""
        return min(1.0, max(0.0, draw)) * self.ceiling(failures)

    def next_try(
        self,
        failures: int,
        age: float,
        draw: float,
        *,
        retry_after: float | None = None,
    ) -> float | None:
        """Seconds to wait before the next try, or None: give up now.

        ``age`` is the time since the first try, ``failures`` the failures in a row so far
        (this one included). A receiver's ``Retry-After`` is a floor on the wait; when it
        reaches past the deadline there is no try left to make.
        """
        remaining = self.max_age - age
        if remaining <= 0:
            return None
        wait = self.delay(failures, draw)
        if retry_after is not None:
            if retry_after >= remaining:
                return None
            wait = max(wait, retry_after)
        return min(wait, remaining)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3) in seconds from ``now``: delay-seconds or an HTTP-date.

    A date in the past means "now" (0); anything unreadable is ignored (None), as if absent.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(slots=True)
class Breaker:
    """One endpoint's circuit: closed (up to the concurrency limit) or open (probes only).

    Times are monotonic seconds passed in by the caller. Only failures that say something
    about the endpoint count (no answer, 5xx, 429); a 4xx about one message does not.
    """

    threshold: int
    cooldown: RetryPolicy  # its ceilings space the probes: base, 2·base, … up to cap
    failures: int = 0  # endpoint failures in a row
    trips: int = 0  # cooldowns started since the circuit was last closed
    open_until: float = 0.0
    hold_until: float = 0.0  # the endpoint asked for a pause (Retry-After)

    @property
    def is_open(self) -> bool:
        return self.threshold > 0 and self.failures >= self.threshold

    def room(self, now: float, concurrency: int, in_flight: int) -> int:
        """How many requests may start now."""
        if now < self.hold_until:
            return 0
        if not self.is_open:
            return max(0, concurrency - in_flight)
        if now < self.open_until or in_flight > 0:
            return 0
        return 1  # the probe

    def wait(self, now: float) -> float:
        """Seconds until ``room`` may grow again by the clock alone (0: not waiting on it)."""
        until = self.hold_until
        if self.is_open:
            until = max(until, self.open_until)
        return max(0.0, until - now)

    def success(self) -> bool:
        """The endpoint answered; True when that closes an open circuit."""
        was_open = self.is_open
        self.failures = 0
        self.trips = 0
        self.open_until = 0.0
        return was_open

    def failure(self, now: float, retry_after: float | None = None) -> bool:
        """The endpoint failed; True when that opens the circuit (it was closed)."""
        if retry_after is not None and retry_after > 0:
            self.hold_until = max(self.hold_until, now + retry_after)
        was_open = self.is_open
        self.failures += 1
        if not self.is_open or now < self.open_until:
            return False  # still closed, or a request sent before the circuit opened
        self.trips += 1  # it just opened, or a probe failed: wait longer before the next
        self.open_until = now + self.cooldown.ceiling(self.trips)
        return not was_open
