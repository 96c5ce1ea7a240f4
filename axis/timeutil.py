"""One time format everywhere: RFC 3339, UTC, microseconds, explicit ``+00:00`` offset.

A fixed width keeps stored times sortable as text in every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime

from axis.errors import InvalidRequest


def now() -> datetime:
    return datetime.now(UTC)


def fmt(when: datetime) -> str:
    """RFC 3339, UTC, microseconds, ``+00:00``: fixed width, so text order is time order."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def parse_query_time(name: str, raw: str) -> datetime:
    """A time given in a query parameter; naive times are refused, not guessed."""
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise InvalidRequest(f"{name}: not an RFC 3339 time: {raw!r}") from None
    if when.tzinfo is None:
        raise InvalidRequest(f"{name}: give an offset, e.g. {raw}+07:00")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        raise InvalidRequest(f"{name}: out of range: {raw!r}") from None
