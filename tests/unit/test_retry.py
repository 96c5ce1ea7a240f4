"""The retry policy and the circuit breaker: pure values, checked without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.retry import Breaker, RetryPolicy, parse_retry_after

bases = st.floats(min_value=0.001, max_value=100.0)
factors = st.floats(min_value=1.0, max_value=10_000.0)
ages = st.floats(min_value=0.0, max_value=1e7)
draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
failures = st.integers(min_value=1, max_value=200)


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    base = draw(bases)
    cap = base * draw(factors)
    max_age = draw(st.floats(min_value=0.0, max_value=1e6))
    return RetryPolicy(base=base, cap=cap, max_age=max_age)


def test_defaults_are_the_contracts() -> None:
    """Without configuration: first retry within 10 s, at most 1 h apart, given up after 72 h."""
    policy = RetryPolicy()
    assert (policy.base, policy.cap, policy.max_age) == (10.0, 3600.0, 72 * 3600.0)
    assert policy.ceiling(1) == 10.0
    assert policy.ceiling(100) == 3600.0


@given(policies(), failures, draws)
def test_delay_stays_within_zero_and_the_capped_ceiling(
    policy: RetryPolicy, n: int, draw: float
) -> None:
    """Every wait is between 0 and min(cap, base * 2**(n-1)): full jitter, never past the cap."""
    wait = policy.delay(n, draw)
    assert 0.0 <= wait <= policy.ceiling(n) <= policy.cap
    assert policy.ceiling(n) == pytest.approx(min(policy.cap, policy.base * 2.0 ** (n - 1)))


@given(policies(), failures)
def test_ceiling_doubles_until_the_cap(policy: RetryPolicy, n: int) -> None:
    """The bound grows exponentially (it doubles) until it reaches the cap, then stays there."""
    now, later = policy.ceiling(n), policy.ceiling(n + 1)
    assert later >= now
    assert later == pytest.approx(min(policy.cap, 2 * now))


@given(policies(), failures, draws, draws)
def test_a_higher_draw_never_waits_less(policy: RetryPolicy, n: int, a: float, b: float) -> None:
    """The jitter is a uniform draw scaled to the ceiling: the delay is monotonic in it."""
    low, high = sorted((a, b))
    assert policy.delay(n, low) <= policy.delay(n, high)


@given(policies(), failures, ages, draws)
def test_next_try_never_passes_the_max_age(
    policy: RetryPolicy, n: int, age: float, draw: float
) -> None:
    """Before the max age the next try comes no later than it; at or after it, none comes."""
    wait = policy.next_try(n, age, draw)
    if age >= policy.max_age:
        assert wait is None
    else:
        assert wait is not None
        assert 0.0 <= wait <= policy.ceiling(n)
        assert age + wait <= policy.max_age * (1 + 1e-12) + 1e-9


@given(policies(), failures, ages, draws, st.floats(min_value=0.0, max_value=1e6))
def test_retry_after_is_a_floor_or_the_end(
    policy: RetryPolicy, n: int, age: float, draw: float, retry_after: float
) -> None:
    """A receiver's Retry-After is never undercut; when it reaches past the deadline, give up."""
    wait = policy.next_try(n, age, draw, retry_after=retry_after)
    if wait is None:
        assert age >= policy.max_age or age + retry_after >= policy.max_age
    else:
        assert wait >= retry_after
        assert age + wait <= policy.max_age * (1 + 1e-12) + 1e-9


def test_a_policy_refuses_nonsense_timing() -> None:
    """A cap below the base, or a base of zero, is a configuration error said at start-up."""
    with pytest.raises(ValueError, match="base"):
        RetryPolicy(base=10, cap=5)
    with pytest.raises(ValueError, match="base"):
        RetryPolicy(base=0)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Both forms of Retry-After are understood; a past date is now, garbage is ignored."""
    now = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    future = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(future, now) == 90.0
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


def test_breaker_opens_after_the_threshold_and_probes_one_at_a_time() -> None:
    """After N failures in a row: one probe at a time, after a growing cooldown; success closes."""
    breaker = Breaker(threshold=3, cooldown=RetryPolicy(base=1.0, cap=4.0, max_age=100.0))
    assert breaker.room(0.0, 4, 0) == 4
    assert not breaker.failure(0.0)
    assert not breaker.failure(0.0)
    assert breaker.room(0.0, 4, 2) == 2  # still closed
    assert breaker.failure(0.0)  # the third opens it
    assert breaker.room(0.5, 4, 0) == 0  # cooling down: nothing goes
    assert breaker.wait(0.5) == pytest.approx(0.5)
    assert not breaker.failure(0.6)  # a request sent before it opened: no longer cooldown
    assert breaker.room(1.0, 4, 0) == 1  # the probe
    assert breaker.room(1.0, 4, 1) == 0  # only one at a time
    assert not breaker.failure(1.0)  # the probe failed: wait twice as long
    assert breaker.room(2.9, 4, 0) == 0
    assert breaker.room(3.0, 4, 0) == 1
    for t in (3.0, 7.0, 11.0):
        breaker.failure(t)
    assert breaker.wait(11.0) == pytest.approx(4.0)  # capped
    assert breaker.success()  # the probe got through: closed
    assert breaker.room(11.0, 4, 0) == 4
    assert not breaker.success()


def test_breaker_honours_an_endpoint_wide_retry_after() -> None:
    """A 429 with Retry-After pauses the whole endpoint, even before the circuit opens."""
    breaker = Breaker(threshold=5, cooldown=RetryPolicy(base=1.0, cap=4.0, max_age=100.0))
    breaker.failure(10.0, retry_after=30.0)
    assert not breaker.is_open
    assert breaker.room(39.0, 4, 0) == 0
    assert breaker.wait(39.0) == pytest.approx(1.0)
    assert breaker.room(40.0, 4, 0) == 4


@given(
    st.integers(min_value=1, max_value=10),
    st.lists(st.booleans(), max_size=60),
)
def test_breaker_never_lets_more_than_one_probe_through(
    threshold: int, results: list[bool]
) -> None:
    """Whatever the sequence of outcomes, an open circuit allows at most one request in flight."""
    breaker = Breaker(threshold=threshold, cooldown=RetryPolicy(base=1.0, cap=8.0, max_age=1e3))
    clock = 0.0
    for ok in results:
        clock += 0.7
        room = breaker.room(clock, 4, 0)
        if breaker.is_open:
            assert room <= 1
            assert breaker.room(clock, 4, 1) == 0
        else:
            assert room == 4
        if room == 0:
            continue
        if ok:
            breaker.success()
            assert not breaker.is_open
        else:
            breaker.failure(clock)
        assert breaker.is_open == (breaker.failures >= threshold)
