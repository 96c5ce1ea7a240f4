"""Query pieces both backends build the same way: filter clauses with ``?`` placeholders.

SQLite takes them as they are; PostgreSQL numbers them (``postgres_base.qmarks``). The clause
texts are fixed; every value the caller gives is a parameter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from axis import timeutil
from axis.model import AuditFilter

# the messages of a DocumentId, whoever sent it (the join drives the from_id index)
DOCUMENT_MESSAGES = (
    "SELECT m.id FROM agencies a CROSS JOIN messages m"
    " WHERE m.from_id = a.organ_id AND m.document_id = ?"
)
# a sent document with a recipient that has reported no receipt (01, 02 or 03)
OVERDUE = (
    "kind = 'edoc' AND received_at < ? AND EXISTS (SELECT 1 FROM deliveries d"
    " WHERE d.message_id = messages.id AND NOT EXISTS (SELECT 1 FROM statuses s"
    " WHERE s.doc_from = messages.from_id AND s.document_id = messages.document_id"
    " AND s.party = d.delivered_to AND s.code IN ('01', '02', '03')))"
)


def audit_clauses(where: AuditFilter) -> tuple[list[str], list[Any]]:
    """Conditions on ``audit_events`` for the auditors' filters."""
    clauses: list[str] = []
    args: list[Any] = []
    if where.message_id is not None:
        clauses.append("message_id = ?")
        args.append(where.message_id)
    if where.document_id is not None:
        clauses.append(f"message_id IN ({DOCUMENT_MESSAGES}) AND document_id = ?")
        args += [where.document_id, where.document_id]
    if where.organ_id is not None:
        clauses.append("(from_id = ? OR to_id = ?)")
        args += [where.organ_id, where.organ_id]
    if where.type is not None:
        clauses.append("type = ?")
        args.append(where.type)
    if where.since is not None:
        clauses.append("at >= ?")
        args.append(timeutil.fmt(where.since))
    if where.until is not None:
        clauses.append("at < ?")
        args.append(timeutil.fmt(where.until))
    return clauses, args


def outbox_clauses(
    from_id: str,
    *,
    after: int | None,
    since: datetime | None,
    until: datetime | None,
    document_id: str | None,
    overdue_before: datetime | None,
) -> tuple[list[str], list[Any]]:
    """Conditions on ``messages`` for a sender's outbox page."""
    clauses = ["from_id = ?"]
    args: list[Any] = [from_id]
    if after is not None:
        clauses.append("seq < ?")
        args.append(after)
    if since is not None:
        clauses.append("received_at >= ?")
        args.append(timeutil.fmt(since))
    if until is not None:
        clauses.append("received_at < ?")
        args.append(timeutil.fmt(until))
    if document_id is not None:
        clauses.append("document_id = ?")
        args.append(document_id)
    if overdue_before is not None:
        clauses.append(OVERDUE)
        args.append(timeutil.fmt(overdue_before))
    return clauses, args
