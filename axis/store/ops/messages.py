"""Sending and receiving: accept a message, show it, list outboxes and inboxes, fetch, ack.

Accepting a message is one write: the message with one delivery per recipient, its statuses
and links, and the audit events (received, forwarded, queued, relayed), all committed together
before the sender is answered. A unique index refuses the same bytes from the same sender (a
resend: the original is answered) and a DocumentId introduced twice (409); on PostgreSQL two
nodes racing to insert either are settled by the same indexes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from axis import cursor as cursors
from axis import lifecycle, timeutil
from axis.audit import Event
from axis.errors import DuplicateConflict, StoreError
from axis.model import (
    CLOSED_STATES,
    AcceptResult,
    Acked,
    AckResult,
    DeliveryState,
    DocumentInfo,
    EventType,
    Fetched,
    InboxItem,
    LinkView,
    MessageKind,
    MessageRecord,
    NewMessage,
    Page,
    Pending,
    RecipientView,
    StatusEntry,
)
from axis.store.backend import QueryKey, Row, Tx
from axis.store.ops.base import OpsBase, page

NEW_DOCUMENT_TYPES = (0, 3)  # business types that introduce a DocumentId: new, replacement
TAKE_BACK = "13"


def accepted_events(message: NewMessage) -> list[Event]:
    """The audit events of accepting ``message``: received, each forwarding to a successor,
    and per delivery its queueing (a status packet also its relaying)."""

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
        "authenticated_by": message.authenticated_by,
        "system": message.system_id,
    }
    events = [event(EventType.MESSAGE_RECEIVED, message.actor, None, received)]
    for route in message.routes:
        if route.forwarded:
            addressed = {"addressed": route.organ_id}
            events.append(
                event(EventType.DELIVERY_FORWARDED, "axis", route.delivered_to, addressed)
            )
    for delivered_to, delivery_id in message.delivery_ids.items():
        if message.kind == "status":
            code = {"status_code": message.status_code}
            events.append(event(EventType.STATUS_RELAYED, "axis", delivered_to, code))
        queued = {"delivery_id": delivery_id}
        events.append(event(EventType.DELIVERY_QUEUED, "axis", delivered_to, queued))
    return events


def accepted_record(message: NewMessage) -> MessageRecord:
    """What a message just accepted looks like: every delivery queued, no links yet shown."""
    recipients = tuple(
        RecipientView(
            organ_id=r.organ_id,
            delivered_to=r.delivered_to,
            delivery_id=message.delivery_ids[r.delivered_to],
            state=DeliveryState.QUEUED,
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
        authenticated_by=message.authenticated_by,
        system_id=message.system_id,
        subject=message.subject,
        notation=message.notation,
    )


def message_columns(message: NewMessage) -> tuple[Any, ...]:
    """The ``messages`` row of a new message, in the order of the ``message_insert`` queries
    (the body file's place, where there is one, is the backend's business)."""
    return (
        message.id,
        message.kind,
        message.from_id,
        message.document_id,
        message.business_type,
        message.status_code,
        message.sha256,
        message.size,
        message.received_at,
        message.body,
        orjson.dumps([[r.organ_id, r.delivered_to] for r in message.routes]).decode(),
        orjson.dumps(list(message.replaced_ids)).decode() if message.replaced_ids else None,
        message.signer_sha256,
        message.authenticated_by,
        message.system_id,
        message.subject,
        message.notation,
    )


def record_from(row: Row, around: list[Row]) -> MessageRecord:
    """A ``message_*`` row and its ``message_around`` rows (tagged ``d``eliveries,
    ``s``tatuses, links ``t``o and links ``b``ack) as the record every view shows."""
    (mid, kind, from_id, document_id, btype, scode, sha, size, received_at, routes) = row[:10]
    authenticated_by, system_id, subject, notation = row[10:14]
    deliveries: dict[str, tuple[Any, ...]] = {}
    statuses: dict[str, list[StatusEntry]] = defaultdict(list)
    refers_to: list[LinkView] = []
    referred_by: list[tuple[int, LinkView]] = []
    for what, a, b, c, d, e, f, g in around:
        if what == "d":
            deliveries[a] = (b, c, int(d), e, f)
        elif what == "s":
            statuses[a].append(StatusEntry(b, c, d, e))
        elif what == "t":
            refers_to.append(LinkView(a, b, c, d))
        else:
            referred_by.append((int(g), LinkView(a, b, c, d)))
    recipients = []
    for organ_id, delivered_to in orjson.loads(routes):
        delivery = deliveries.get(delivered_to)
        if delivery is None:
            continue
        delivery_id, state, attempts, last_error, updated_at = delivery
        recipients.append(
            RecipientView(
                organ_id=organ_id,
                delivered_to=delivered_to,
                delivery_id=delivery_id,
                state=state,
                attempts=attempts,
                last_error=last_error,
                updated_at=updated_at,
                statuses=lifecycle.ordered(statuses.get(delivered_to, ())),
            )
        )
    return MessageRecord(
        id=mid,
        kind=kind,
        from_id=from_id,
        document_id=document_id,
        business_type=btype,
        status_code=scode,
        sha256=sha,
        size=size,
        received_at=received_at,
        recipients=tuple(recipients),
        refers_to=tuple(sorted(refers_to, key=lambda link: (link.message_id, link.relation))),
        referred_by=tuple(link for _, link in sorted(referred_by, key=lambda x: x[0])),
        authenticated_by=authenticated_by,
        system_id=system_id,
        subject=subject,
        notation=notation,
    )


def _pending_filters(
    kind: MessageKind | None, since: datetime | None, until: datetime | None
) -> tuple[list[str], list[Any]]:
    names: list[str] = []
    args: list[Any] = []
    for name, value in (
        ("pending_kind", kind),
        ("pending_since", since and timeutil.fmt(since)),
        ("pending_until", until and timeutil.fmt(until)),
    ):
        if value is not None:
            names.append(name)
            args.append(value)
    return names, args


async def refused(tx: Tx, message: NewMessage) -> str:
    """Why a unique index refused ``message``: sent before (its id), or a DocumentId reused."""
    existing = await tx.value("message_by_digest", message.from_id, message.sha256)
    if existing:
        return str(existing)
    if message.kind == "edoc" and message.business_type in NEW_DOCUMENT_TYPES:
        clash = await tx.value("document_introduced", message.from_id, message.document_id)
        if clash:
            raise DuplicateConflict(
                f"DocumentId {message.document_id} was already sent by"
                f" {message.from_id} with other bytes (message {clash})",
                original_message_id=clash,
            )
    raise StoreError(f"message {message.id}: refused by the store, and not as a duplicate")


class MessageOps(OpsBase):
    """Sending, following, receiving and acknowledging messages."""

    async def find_by_digest(self, from_id: str, sha256: str) -> MessageRecord | None:
        mid = await self._b.read.value("message_by_digest", from_id, sha256)
        return await self.message(mid) if mid else None

    async def document_sent(self, from_id: str, document_id: str) -> str | None:
        mid = await self._b.read.value("document_introduced", from_id, document_id)
        return str(mid) if mid else None

    async def find_document(self, from_id: str, document_id: str) -> DocumentInfo | None:
        mid = await self.document_sent(from_id, document_id)
        if mid is None:
            return None
        rows = await self._b.read.all("document_recipients", from_id, document_id)
        recipients = tuple(dict.fromkeys(r[0] for r in rows))
        return DocumentInfo(mid, from_id, document_id, recipients)

    async def latest_request(self, doc: DocumentInfo, party: str) -> str | None:
        mid = await self._b.read.value(
            "latest_request", doc.from_id, doc.document_id, party, TAKE_BACK
        )
        return str(mid) if mid else None

    async def accept(self, message: NewMessage) -> AcceptResult:
        async def op(tx: Tx) -> str | None:
            if not await self._b.insert_message(tx, message):
                return await refused(tx, message)
            for event in accepted_events(message):
                tx.event(event)
            tx.notify(message.delivery_ids)
            return None

        existing_id = await self._b.write(op, message=message)
        if existing_id is not None:
            record = await self.message(existing_id)
            if record is None:
                raise StoreError(f"message {existing_id}: refused as sent before, yet not found")
            return AcceptResult(record, created=False)
        return AcceptResult(accepted_record(message), created=True)

    async def message(self, message_id: str) -> MessageRecord | None:
        row = await self._b.read.one("message_by_id", message_id)
        return await self._record(row) if row else None

    async def delivery_states(self, message_id: str) -> list[tuple[str, DeliveryState]]:
        rows = await self._b.read.all("message_deliveries", message_id)
        return [(row[0], DeliveryState(row[1])) for row in rows]

    async def _record(self, row: Row) -> MessageRecord:
        mid, kind, from_id, document_id = row[0], row[1], row[2], row[3]
        around = await self._b.read.all("message_around", mid, kind == "edoc", from_id, document_id)
        return record_from(row, around)

    async def outbox(
        self,
        from_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        document_id: str | None,
        cursor: str | None,
        limit: int,
        overdue_before: datetime | None = None,
    ) -> Page[MessageRecord]:
        conditions: list[str] = []
        args: list[Any] = [from_id]
        for name, value in (
            ("outbox_before", cursors.after_number(cursor)),
            ("outbox_since", since and timeutil.fmt(since)),
            ("outbox_until", until and timeutil.fmt(until)),
            ("outbox_document", document_id),
            ("outbox_overdue", overdue_before and timeutil.fmt(overdue_before)),
        ):
            if value is not None:
                conditions.append(name)
                args.append(value)
        key: QueryKey = ("outbox_page", *conditions)
        rows = await self._b.read.all(key, *args, limit + 1)
        items = [await self._record(row[1:]) for row in rows[:limit]]
        return page(items, rows, limit)

    async def inbox(
        self, organ_id: str, *, kind: MessageKind | None, cursor: str | None, limit: int
    ) -> Page[InboxItem]:
        after = cursors.after_number(cursor) or 0
        if kind is None:
            rows = await self._b.read.all("inbox_page", organ_id, after, limit + 1)
        else:
            rows = await self._b.read.all(
                ("inbox_page", "inbox_kind"), organ_id, after, kind, limit + 1
            )
        return page([InboxItem(*row[1:]) for row in rows[:limit]], rows, limit)

    async def pending(
        self,
        organ_ids: Sequence[str],
        *,
        kind: MessageKind | None,
        since: datetime | None,
        until: datetime | None,
        offset: int,
        limit: int,
    ) -> list[Pending]:
        """Open deliveries to any of ``organ_ids``, oldest first, one page by offset (a
        connected system's inbox over every agency it serves)."""
        if not organ_ids:
            return []
        conditions, args = _pending_filters(kind, since, until)
        where = [list(organ_ids), *args]
        rows = await self._b.read.all(("pending_page", *conditions), *where, limit, offset)
        return [
            Pending(mid, kind_, from_id, to, received, updated, state, bool(processing))
            for mid, kind_, from_id, to, received, updated, state, processing in rows
        ]

    async def pending_count(
        self,
        organ_ids: Sequence[str],
        *,
        kind: MessageKind | None,
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        """How many open deliveries to any of ``organ_ids`` there are in all."""
        if not organ_ids:
            return 0
        conditions, args = _pending_filters(kind, since, until)
        total = await self._b.read.value(("pending_count", *conditions), list(organ_ids), *args)
        return int(total or 0)

    async def sent(
        self,
        from_ids: Sequence[str],
        *,
        since: datetime | None,
        until: datetime | None,
        offset: int,
        limit: int,
    ) -> list[MessageRecord]:
        """Messages sent by any of ``from_ids``, newest first, one page by offset."""
        if not from_ids:
            return []
        conditions: list[str] = []
        args: list[Any] = [list(from_ids)]
        for name, value in (("sent_since", since), ("sent_until", until)):
            if value is not None:
                conditions.append(name)
                args.append(timeutil.fmt(value))
        rows = await self._b.read.all(("sent_page", *conditions), *args, limit, offset)
        return [await self._record(row[1:]) for row in rows]

    async def mark_processing(self, message_id: str, organ_id: str, *, actor: str) -> str:
        """The recipient says it is working on the message: noted once (an audit event), the
        delivery stays listed; after its ack nothing changes. Its state now."""

        async def op(tx: Tx) -> str:
            row = await tx.one("delivery_to_ack", message_id, organ_id)
            if row is None:
                raise LookupError(message_id)
            delivery_id, state, _updated, document_id, from_id = row
            if state in CLOSED_STATES:
                return str(state)
            if await tx.run("delivery_processing", tx.at, tx.at, delivery_id):
                tx.event(
                    Event(
                        type=EventType.DELIVERY_PROCESSING,
                        actor=actor,
                        message_id=message_id,
                        document_id=document_id,
                        from_id=from_id,
                        to_id=organ_id,
                        detail={"delivery_id": delivery_id},
                    )
                )
            return str(state)

        return await self._b.write(op)

    async def wait_for_mail(self, organ_id: str, timeout: float) -> None:  # noqa: ASYNC109
        await self._b.wait_for_mail(organ_id, timeout)

    async def fetch(self, message_id: str, organ_id: str, *, actor: str) -> Fetched | None:
        row = await self._b.read.one("delivery_to_fetch", message_id, organ_id)
        if row is None:
            return None
        delivery_id, state, kind, from_id, sha, size, body, ref, document_id = row
        if state in (DeliveryState.QUEUED, DeliveryState.RETRYING):

            async def op(tx: Tx) -> None:
                changed = await tx.run(
                    "delivery_fetched",
                    DeliveryState.FETCHED,
                    tx.at,
                    delivery_id,
                    DeliveryState.QUEUED,
                    DeliveryState.RETRYING,
                )
                if changed:
                    tx.event(
                        Event(
                            type=EventType.DELIVERY_FETCHED,
                            actor=actor,
                            message_id=message_id,
                            document_id=document_id,
                            from_id=from_id,
                            to_id=organ_id,
                            detail={"delivery_id": delivery_id},
                        )
                    )

            await self._b.write(op)
        body_file = None if body is not None else await self._b.body_path(message_id, sha, ref)
        return Fetched(
            message_id=message_id,
            kind=kind,
            from_id=from_id,
            sha256=sha,
            size=size,
            body=bytes(body) if body is not None else None,
            body_file=body_file,
        )

    async def ack(
        self, message_id: str, organ_id: str, result: AckResult, reason: str | None, *, actor: str
    ) -> Acked:
        target = DeliveryState.ACKED if result == "done" else DeliveryState.FAILED

        async def op(tx: Tx) -> Acked:
            row = await tx.one("delivery_to_ack", message_id, organ_id)
            if row is None:
                raise LookupError(message_id)
            delivery_id, state, updated_at, document_id, from_id = row
            if state == target:
                return Acked(delivery_id, state, updated_at)
            if state in CLOSED_STATES:
                raise DuplicateConflict(
                    f"result: the message was already acknowledged as"
                    f" {'done' if state == DeliveryState.ACKED else 'fail'}"
                )
            failed = target == DeliveryState.FAILED
            await tx.run("delivery_acked", target, reason, tx.at, failed, reason, delivery_id)
            tx.event(
                Event(
                    type=EventType.DELIVERY_FAILED if failed else EventType.DELIVERY_ACKED,
                    actor=actor,
                    message_id=message_id,
                    document_id=document_id,
                    from_id=from_id,
                    to_id=organ_id,
                    detail={"delivery_id": delivery_id, "reason": reason},
                )
            )
            return Acked(delivery_id, target, tx.at)

        return await self._b.write(op)
