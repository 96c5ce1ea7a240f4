"""Lifecycle rules: status ordering and receipt deadlines (working days, Vietnam time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from axis.lifecycle import VIETNAM, ReceiptDeadline, ordered
from axis.model import StatusEntry


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=VIETNAM)


def test_deadline_is_end_of_next_working_day() -> None:
    """Friday's document is due by the end of Monday; Monday's by the end of Tuesday."""
    rule = ReceiptDeadline.parse("next-working-day")
    assert rule.due(at(20, 10)) == datetime(2026, 11, 24, tzinfo=VIETNAM)  # Fri -> Mon end
    assert rule.due(at(23, 23)) == datetime(2026, 11, 25, tzinfo=VIETNAM)  # Mon -> Tue end
    assert rule.due(at(22, 9)) == datetime(2026, 11, 24, tzinfo=VIETNAM)  # Sun -> Mon end


def test_fixed_deadline_in_seconds() -> None:
    """A number of seconds is taken literally."""
    rule = ReceiptDeadline.parse("90")
    assert rule.due(at(23, 8)) == at(23, 8) + timedelta(seconds=90)


@given(
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1)),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1)),
)
def test_cutoff_agrees_with_due(received: datetime, now: datetime) -> None:
    """A message is before the cutoff exactly when its deadline has passed."""
    rule = ReceiptDeadline.parse("next-working-day")
    received, now = received.replace(tzinfo=UTC), now.replace(tzinfo=UTC)
    assert (received < rule.cutoff(now)) == (rule.due(received) < now)


def test_statuses_are_ordered_by_time_and_regressions_flagged() -> None:
    """A 06 dated before a 03 is shown first, and the later 03 is flagged, not dropped."""
    entries = [
        StatusEntry("03", "2026-11-23T10:00:00.000000+00:00", "m3", "r2"),
        StatusEntry("06", "2026-11-23T09:00:00.000000+00:00", "m6", "r1"),
        StatusEntry("13", "2026-11-23T11:00:00.000000+00:00", "m13", "r3"),
    ]
    out = ordered(entries)
    assert [e.code for e in out] == ["06", "03", "13"]
    assert out[0].inconsistent is None
    assert out[1].inconsistent is not None and "06" in out[1].inconsistent
    assert out[2].inconsistent is None
