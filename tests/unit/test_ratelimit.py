"""Per-agency token buckets: pure, checked over random request times without sleeping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.config import build_settings
from axis.ratelimit import RateLimiter, retry_after_header

rates = st.floats(min_value=0.01, max_value=1000.0)
bursts = st.integers(min_value=1, max_value=50)
gaps = st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=200)


def _times(steps: list[float]) -> list[float]:
    now, out = 1000.0, []
    for step in steps:
        now += step
        out.append(now)
    return out


@given(rates, bursts, gaps)
def test_no_window_admits_more_than_the_burst_plus_the_refill(
    rate: float, burst: int, steps: list[float]
) -> None:
    """In any span of time, accepted requests never exceed burst + rate x span."""
    limiter = RateLimiter(rate, burst)
    times = _times(steps)
    accepted = [t for t in times if limiter.take("A", t) == 0.0]
    for i, start in enumerate(accepted):
        for j in range(i, len(accepted)):
            span = accepted[j] - start
            assert j - i + 1 <= burst + rate * span + 1e-6


@given(rates, bursts, gaps)
def test_waiting_the_answered_time_gets_through(
    rate: float, burst: int, steps: list[float]
) -> None:
    """A refused caller that waits exactly the answered time is accepted."""
    limiter = RateLimiter(rate, burst)
    clock = 0.0  # the retry below moves time on: later requests may not come before it
    for step in _times(steps):
        t = max(step, clock)
        wait = limiter.take("A", t)
        assert wait >= 0.0
        clock = t
        if wait:
            assert wait <= 1.0 / rate + 1e-9
            clock = t + wait * (1 + 1e-9)
            assert limiter.take("A", clock) == 0.0


@given(rates, bursts)
def test_a_fresh_agency_gets_its_whole_burst_and_others_are_untouched(
    rate: float, burst: int
) -> None:
    """The first `burst` requests at one instant pass, the next waits; other keys are apart."""
    limiter = RateLimiter(rate, burst)
    assert all(limiter.take("A", 5.0) == 0.0 for _ in range(burst))
    assert limiter.take("A", 5.0) > 0.0
    assert limiter.take("B", 5.0) == 0.0


def test_refused_requests_do_not_push_the_wait_further() -> None:
    """Retrying early costs nothing: the wait shrinks with time, whatever was refused."""
    limiter = RateLimiter(1.0, 1)
    assert limiter.take("A", 0.0) == 0.0
    assert limiter.take("A", 0.25) == pytest.approx(0.75)
    assert limiter.take("A", 0.5) == pytest.approx(0.5)
    assert limiter.take("A", 1.0) == 0.0


@given(st.floats(min_value=0.0, max_value=1e6))
def test_retry_after_is_whole_seconds_never_early(wait: float) -> None:
    """The header rounds up, and is at least one second."""
    seconds = int(retry_after_header(wait))
    assert seconds >= max(1.0, wait) and seconds == max(1, math.ceil(wait))


def test_settings_default_to_no_limit_and_a_two_second_burst() -> None:
    """Unset, there is no limit; set, the burst defaults to two seconds' worth."""
    assert build_settings(env={}).rate_limit == 0.0
    limited = build_settings(env={"AXIS_RATE_LIMIT": "50"})
    assert (limited.rate_limit, limited.effective_rate_burst) == (50.0, 100)
    assert build_settings(env={"AXIS_RATE_LIMIT": "0.2"}).effective_rate_burst == 1
    explicit = build_settings(env={"AXIS_RATE_LIMIT": "50", "AXIS_RATE_BURST": "7"})
    assert explicit.effective_rate_burst == 7
    with pytest.raises(ValueError, match="AXIS_RATE_LIMIT"):
        build_settings(env={"AXIS_RATE_LIMIT": "-1"})
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter(0.0, 1)
