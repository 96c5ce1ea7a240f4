"""Times as the axis writes them: fixed-width RFC 3339 in UTC, so text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from axis import timeutil

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
