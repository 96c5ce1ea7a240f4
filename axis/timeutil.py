"""One time format everywhere: RFC 3339, UTC, microseconds, explicit ``+00:00`` offset.

A fixed width keeps stored times sortable as text in every backend.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from axis.errors import InvalidRequest


def now() -> datetime:
    return datetime.now(UTC)


def fmt(when: datetime) -> str:
    """RFC 3339, UTC, microseconds, ``+00:00``: fixed width, so text order is time order."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


_RFC3339 = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?P<fraction>\.[0-9]+)?(?P<zone>[Zz]|[+\- ][0-9]{2}:[0-9]{2})?)?",
    re.ASCII,
)
_LOWEST = datetime.min.replace(tzinfo=UTC)
_HIGHEST = datetime.max.replace(tzinfo=UTC)
EXAMPLES = "e.g. 2026-12-04T08:30:00+07:00, 2026-12-04T01:30:00Z or 2026-12-04"


def parse_query_time(name: str, raw: str) -> datetime:
    """A time given as a bound (a query parameter, a CLI flag): RFC 3339 or a date alone.

    RFC 3339 with an offset (``Z``/``z``, ``T``/``t`` or a space between date and time, up to
    nine fraction digits, a leap second read as the end of its minute), or a date alone
    (``2026-12-04``: the start of that day in Vietnam time, where the axis's users are). A
    space where the offset's sign stands is a ``+`` that a URL decoded to a space. A time
    without an offset is refused, not guessed. Bounds beyond what a timestamp holds (year 0,
    or 9999 pushed past the calendar by its offset) are clamped: nothing lies beyond them.
    Every hint in an error is itself accepted.
    """
    found = _RFC3339.fullmatch(raw)
    if found is None:
        raise InvalidRequest(f"{name}: not an RFC 3339 time or a date: {raw!r} ({EXAMPLES})")
    parts = found.groupdict()
    year, month, day = int(parts["year"]), int(parts["month"]), int(parts["day"])
    try:  # year 0 is a leap year in RFC 3339's (proleptic Gregorian) calendar, as 2000 is
        datetime(year or 2000, month, day)
    except ValueError:
        raise InvalidRequest(f"{name}: no such date: {raw!r} ({EXAMPLES})") from None
    if parts["hour"] is None:
        from axis.lifecycle import VIETNAM  # the rule of the day lives there

        return _to_utc(datetime(year, month, day, tzinfo=VIETNAM)) if year else _LOWEST
    zone = parts["zone"]
    if zone is None:
        fixed = f"{parts['year']}-{parts['month']}-{parts['day']}T{parts['hour']}:"
        fixed += f"{parts['minute']}:{parts['second']}{parts['fraction'] or ''}"
        raise InvalidRequest(
            f"{name}: {raw!r} has no offset; give one, e.g. {fixed}+07:00 (Vietnam time) or"
            f" {fixed}Z (UTC)"
        )
    hour, minute, second = int(parts["hour"]), int(parts["minute"]), int(parts["second"])
    micro = int((parts["fraction"] or ".0")[1:7].ljust(6, "0"))
    if second == 60:  # a leap second: the last instant of its minute
        second, micro = 59, 999999
    offset = timedelta(0)
    if zone not in "Zz":
        off_hours, off_minutes = int(zone[1:3]), int(zone[4:6])
        if off_hours > 23 or off_minutes > 59:
            raise InvalidRequest(f"{name}: no such offset {zone.strip()!r} in {raw!r}")
        offset = timedelta(hours=off_hours, minutes=off_minutes)
        if zone[0] == "-":
            offset = -offset
    try:
        when = datetime(year or 2000, month, day, hour, minute, second, micro, timezone(offset))
    except ValueError:
        raise InvalidRequest(f"{name}: no such time: {raw!r} ({EXAMPLES})") from None
    return _to_utc(when) if year else _LOWEST


def _to_utc(when: datetime) -> datetime:
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        return _LOWEST if when.year == 1 else _HIGHEST
