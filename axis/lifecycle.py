"""The document lifecycle, pure: status order, party rules, receipt deadlines.

Statuses are shown in the order things happened (their ``Timestamp``), not the order they
arrived; a status that contradicts the progression before it (a 03 after a 06) is kept and
flagged, never dropped: the sender must see what the recipient said.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from axis.model import StatusEntry

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
RECIPIENT_CODES = ("01", "02", "03", "04", "05", "06", "15", "16")
SENDER_CODES = ("13",)
RECEIPT_CODES = ("01", "02", "03")  # a recipient has reported receipt (or refusal)
# the progression of handling; 13/15/16 stand outside it
_RANK = {"01": 1, "02": 2, "03": 2, "04": 3, "05": 4, "06": 5}


def ordered(entries: Iterable[StatusEntry]) -> tuple[StatusEntry, ...]:
    """Statuses by when they happened, each flagged if it goes back in the progression."""
    out: list[StatusEntry] = []
    highest: StatusEntry | None = None
    for entry in sorted(entries, key=lambda e: (e.at, e.received_at, e.message_id)):
        rank = _RANK.get(entry.code)
        note = None
        if rank is not None and highest is not None and rank < _RANK[highest.code]:
            note = f"{entry.code} dated after {highest.code} ({highest.message_id})"
        elif entry.code == "02" and highest is not None and highest.code == "03":
            note = f"02 (refused) dated after 03 (accepted, {highest.message_id})"
        if rank is not None and (highest is None or rank >= _RANK[highest.code]):
            highest = entry
        out.append(replace(entry, inconsistent=note) if note else entry)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ReceiptDeadline:
    """How long a recipient has to report receipt (01/02/03) before it is overdue.

    ``seconds`` None means the rule of NĐ 30/2020 as operators read it: by the end of the next
    working day (Monday to Friday, Vietnam time; public holidays are not known to the axis).
    """

    seconds: float | None = None

    @classmethod
    def parse(cls, text: str) -> ReceiptDeadline:
        if text in ("", "next-working-day"):
            return cls(None)
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not value > 0:
            raise ValueError("a positive number of seconds, or next-working-day")
        return cls(value)

    def due(self, received_at: datetime) -> datetime:
        if self.seconds is not None:
            return received_at + timedelta(seconds=self.seconds)
        local_day = received_at.astimezone(VIETNAM).date()
        return _end_of(_next_working_day(local_day))

    def cutoff(self, now: datetime) -> datetime:
        """Every message received before this instant is past its deadline at ``now``."""
        if self.seconds is not None:
            return now - timedelta(seconds=self.seconds)
        today = now.astimezone(VIETNAM).date()
        day = today
        # the latest day whose next working day ends before now; at most a long weekend back
        while _end_of(_next_working_day(day)) >= now:
            day -= timedelta(days=1)
        return datetime.combine(day + timedelta(days=1), time(0), VIETNAM).astimezone(UTC)


def _next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), VIETNAM).astimezone(UTC)
