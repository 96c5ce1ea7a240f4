"""What every area of the operations shares: the backend, and rows turned into records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from axis import cursor
from axis.audit import Event
from axis.model import Page
from axis.registry import Agency, Certificate
from axis.store.backend import Backend, Row


class OpsBase:
    """The backend every operation goes through."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend


def page(items: list[Any], rows: Sequence[Row], limit: int, position: int = 0) -> Page[Any]:
    """A page of at most ``limit`` items from ``limit + 1`` rows; ``row[position]`` of the
    last item shown is where the next page starts."""
    more = len(rows) > limit
    return Page(items[:limit], cursor.encode(rows[limit - 1][position]) if more else None)


def about(type_: str, actor: str, who: Sequence[Any], detail: dict[str, Any]) -> Event:
    """An event about one delivery; ``who`` is ``(message_id, document_id, from_id, to_id)``."""
    message_id, document_id, from_id, to_id = who
    return Event(
        type=type_,
        actor=actor,
        message_id=message_id,
        document_id=document_id,
        from_id=from_id,
        to_id=to_id,
        detail=detail,
    )


def agency_from_row(row: Row, certificates: tuple[Certificate, ...]) -> Agency:
    """An ``agency_*`` query's row (the ``agencies`` columns in table order) as an Agency."""
    return Agency(
        organ_id=row[0],
        name=row[1],
        kind=row[2],
        parent=row[3],
        status=row[4],
        successor=row[5],
        endpoint=row[6],
        push_secret=row[7],
        allow_sha1=bool(row[8]),
        confirmed=bool(row[9]),
        source=row[10],
        certificates=certificates,
        number=row[11],
        version=int(row[12]),
        updated_at=row[13],
    )
