"""Times as the axis writes them: fixed-width RFC 3339 in UTC, so text order is time order."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis import timeutil
from axis.errors import InvalidRequest
from axis.lifecycle import VIETNAM

moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)


@given(moments, offsets)
def test_fmt_is_fixed_width_utc_with_microseconds(moment: datetime, offset: timezone) -> None:
    """Any aware time, in any offset, is written in UTC as YYYY-MM-DDTHH:MM:SS.ffffff+00:00."""
    text = timeutil.fmt(moment.astimezone(offset))
    assert len(text) == 32 and text.endswith("+00:00")
    assert text == moment.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    assert datetime.fromisoformat(text) == moment


@given(moments, moments)
def test_text_order_is_time_order(a: datetime, b: datetime) -> None:
    """Comparing the written forms compares the times (the store sorts them as text)."""
    assert (timeutil.fmt(a) < timeutil.fmt(b)) == (a < b)


@given(moments, offsets, st.booleans())
def test_any_rfc3339_time_is_read_as_the_instant_it_names(
    moment: datetime, offset: timezone, upper: bool
) -> None:
    """Any offset, `T`/`t`, `Z`/`z`, with or without a fraction: the same instant, in UTC."""
    shown = moment.astimezone(offset)
    minutes = int(shown.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    if minutes == 0:
        zone = "Z" if upper else "z"
    else:
        zone = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = shown.strftime("%Y-%m-%dT%H:%M:%S.%f") + zone
    if not upper:
        text = text.replace("T", "t")
    assert timeutil.parse_query_time("since", text) == moment
    # a '+' decoded from a URL to a space is still the offset's sign
    assert timeutil.parse_query_time("since", text.replace("+", " ")) == moment


@given(st.dates(min_value=datetime(1, 1, 2).date()))
def test_a_date_alone_is_the_start_of_that_day_in_vietnam(day: date) -> None:
    """`2026-12-04` is 2026-12-04T00:00:00+07:00."""
    start = datetime.combine(day, datetime.min.time(), VIETNAM)
    assert timeutil.parse_query_time("since", day.isoformat()) == start


@given(st.text(max_size=40))
def test_every_hint_in_a_refusal_is_itself_accepted(raw: str) -> None:
    """Whatever is refused, each example the error offers parses."""
    try:
        timeutil.parse_query_time("since", raw)
    except InvalidRequest as exc:
        tail = exc.detail.split("e.g. ", 1)[1] if "e.g. " in exc.detail else ""
        for hint in re.findall(r"[0-9][0-9T:.+\-Z]+", tail):
            timeutil.parse_query_time("since", hint)


@given(moments.map(lambda m: m.replace(tzinfo=None, microsecond=0)))
def test_a_time_without_offset_is_refused_with_hints_that_parse(naive: datetime) -> None:
    """No guessing: a naive time is 400, and both hints it gives are good values."""
    text = naive.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        timeutil.parse_query_time("since", text)
    except InvalidRequest as exc:
        hints = re.findall(r"[0-9][0-9T:.+\-Z]+[0-9Z]", exc.detail.split("e.g. ", 1)[1])
        assert len(hints) == 2
        assert {timeutil.parse_query_time("since", h) for h in hints} >= {naive.replace(tzinfo=UTC)}
    else:
        raise AssertionError(f"{text} was accepted")


@pytest.mark.parametrize(
    "raw",
    ["0000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "0000-02-29", "0001-01-01"],
)
def test_bounds_before_the_calendar_are_the_earliest_instant(raw: str) -> None:
    """Year 0, or year 1 pushed back by its offset: nothing is earlier, so no error."""
    assert timeutil.parse_query_time("since", raw) == datetime.min.replace(tzinfo=UTC)


def test_the_end_of_the_calendar_and_a_leap_second_are_taken() -> None:
    """9999-12-31 pushed past the calendar, and :60, are read as what they bound."""
    assert timeutil.parse_query_time("until", "9999-12-31T23:59:59-10:00") == datetime.max.replace(
        tzinfo=UTC
    )
    leap = timeutil.parse_query_time("until", "2016-12-31T23:59:60Z")
    assert leap == datetime(2016, 12, 31, 23, 59, 59, 999999, UTC)
