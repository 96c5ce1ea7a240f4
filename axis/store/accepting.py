"""The audit events and the answer of accepting a message, the same on every backend."""

from __future__ import annotations

from typing import Any

from axis.audit import Event
from axis.model import MessageRecord, NewMessage, RecipientView


def accepted_events(message: NewMessage) -> list[Event]:
    """The audit events of accepting ``message``, the same on every backend: received, each
    forwarding to a successor, and per delivery its queueing (a status also its relaying)."""

    def event(type_: str, actor: str, to_id: str | None, detail: dict[str, Any]) -> Event:
        return Event(
            type=type_,
            actor=actor,
            message_id=message.id,
            document_id=message.document_id,
            from_id=message.from_id,
            to_id=to_id,
            detail=detail,
        )

    received = {
        "kind": message.kind,
        "sha256": message.sha256,
        "size": message.size,
        "business_type": message.business_type,
        "status_code": message.status_code,
    }
    events = [event("message_received", message.actor, None, received)]
    for route in message.routes:
        if route.forwarded:
            addressed = {"addressed": route.organ_id}
            events.append(event("delivery_forwarded", "axis", route.delivered_to, addressed))
    for delivered_to, delivery_id in message.delivery_ids.items():
        if message.kind == "status":
            code = {"status_code": message.status_code}
            events.append(event("status_relayed", "axis", delivered_to, code))
        queued = {"delivery_id": delivery_id}
        events.append(event("delivery_queued", "axis", delivered_to, queued))
    return events


def accepted_record(message: NewMessage) -> MessageRecord:
    """What a message just accepted looks like: every delivery queued, no links yet shown."""
    recipients = tuple(
        RecipientView(
            organ_id=r.organ_id,
            delivered_to=r.delivered_to,
            delivery_id=message.delivery_ids[r.delivered_to],
            state="queued",
            attempts=0,
            last_error=None,
            updated_at=message.received_at,
        )
        for r in message.routes
    )
    return MessageRecord(
        id=message.id,
        kind=message.kind,
        from_id=message.from_id,
        document_id=message.document_id,
        business_type=message.business_type,
        status_code=message.status_code,
        sha256=message.sha256,
        size=message.size,
        received_at=message.received_at,
        recipients=recipients,
    )
