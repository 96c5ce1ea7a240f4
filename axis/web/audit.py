"""HTTP endpoints: auditors' read-only views of the audit log (issue 6).

The log's background duties (checkpoints, retention) are ``axis.jobs``'.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from axis import audit, log
from axis.audit import StoredEvent
from axis.errors import InvalidRequest, NotFound
from axis.model import AuditFilter, Role
from axis.web import query
from axis.web.agencies import json_response
from axis.web.keys import AXIS_CERTIFICATES, STORE
from axis.web.middleware import require
from axis.web.query import PAGING, Query

_log = log.get("axis.audit")
AUDITORS: tuple[Role, ...] = ("auditor", "admin")
EXPORT_BATCH = 1000
_FORMATS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv", "csv"),
}


FILTERS = ("organ_id", "document_id", "message_id", "type", "since", "until")


def _filter(q: Query) -> AuditFilter:
    return AuditFilter(
        organ_id=q.text("organ_id"),
        document_id=q.text("document_id"),
        message_id=q.text("message_id"),
        type=q.event_type(),
        since=q.time("since"),
        until=q.time("until"),
    )


async def list_events(request: web.Request) -> web.Response:
    """A page of events in ``seq`` order, by the contract's filters."""
    await require(request, *AUDITORS)
    q = Query(request, *FILTERS, *PAGING)
    page = await request.app[STORE].audit_events(_filter(q), cursor=q.cursor(), limit=q.limit())
    return json_response(
        {"items": [e.to_json() for e in page.items], "next_cursor": page.next_cursor}
    )


async def message_trail(request: web.Request) -> web.Response:
    """Everything that happened to one message, for every recipient, in ``seq`` order."""
    await require(request, *AUDITORS)
    Query(request)
    store = request.app[STORE]
    message_id = request.match_info["id"]
    events: list[StoredEvent] = []
    async with contextlib.aclosing(store.audit_stream(AuditFilter(message_id=message_id))) as s:
        async for batch in s:
            events.extend(batch)
    record = await store.message(message_id)
    if record is None and not events:
        raise NotFound(f"message {message_id}: no such message in the audit log")
    message: dict[str, Any] | None = None
    if record is not None:
        message = {
            "id": record.id,
            "kind": record.kind,
            "document_id": record.document_id,
            "from": record.from_id,
            "sha256": record.sha256,
            "size": record.size,
            "received_at": record.received_at,
            "authenticated_by": record.authenticated_by,
            "system": record.system_id,
            "body_purged_at": await store.body_purged_at(message_id),
            "recipients": [
                {
                    "organ_id": r.organ_id,
                    "delivered_to": r.delivered_to,
                    "delivery_id": r.delivery_id,
                    "state": r.state,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                    "updated_at": r.updated_at,
                }
                for r in record.recipients
            ],
            "refers_to": [
                {"message_id": link.message_id, "relation": link.relation}
                for link in record.refers_to
            ],
            "referred_by": [
                {"message_id": link.message_id, "relation": link.relation}
                for link in record.referred_by
            ],
        }
    return json_response(
        {"message_id": message_id, "message": message, "events": [e.to_json() for e in events]}
    )


async def export_events(request: web.Request) -> web.StreamResponse:
    """All matching events as CSV or JSON lines, streamed in batches: constant memory."""
    await require(request, *AUDITORS)
    q = Query(request, "format", *FILTERS)
    name = q.choice("format", tuple(_FORMATS)) or "jsonl"
    return await stream_events(request, _filter(q), name)


FORMATS = tuple(_FORMATS)


async def stream_events(request: web.Request, where: AuditFilter, name: str) -> web.StreamResponse:
    """Stream the events ``where`` selects as ``name`` (jsonl or csv), as an attachment."""
    content_type, suffix = _FORMATS[name]
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{content_type}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="audit-events.{suffix}"',
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    if name == "csv":
        await response.write(audit.csv_rows([], header=True))
    stream = request.app[STORE].audit_stream(where, batch=EXPORT_BATCH)
    async with contextlib.aclosing(stream):
        async for batch in stream:
            chunk = audit.csv_rows(batch) if name == "csv" else audit.jsonl(batch)
            await response.write(chunk)
    await response.write_eof()
    return response


async def verify(request: web.Request) -> web.Response:
    """Check the chain and every checkpoint; ``ok: false`` names the first bad ``seq``."""
    await require(request, *AUDITORS)
    Query(request)
    certificates = request.app[AXIS_CERTIFICATES]  # the current one and earlier keys'
    verdict = await request.app[STORE].verify_audit(certificates)
    if not verdict.ok:
        _log.warning(
            "audit_verify_failed", first_bad_seq=verdict.first_bad_seq, reason=verdict.reason
        )
    return json_response(verdict.to_json())


async def list_checkpoints(request: web.Request) -> web.Response:
    """Signed checkpoints, oldest first; each one's ``xml`` verifies with ``xmlsec1``."""
    await require(request, *AUDITORS)
    q = Query(request, *PAGING)
    page = await request.app[STORE].checkpoints(cursor=q.cursor(), limit=q.limit())
    return json_response(
        {"items": [c.to_json() for c in page.items], "next_cursor": page.next_cursor}
    )


async def get_checkpoint(request: web.Request) -> web.Response:
    """One signed checkpoint document (``latest`` or an event ``seq``), as ``application/xml``."""
    await require(request, *AUDITORS)
    Query(request)
    raw = request.match_info["seq"]
    seq = None if raw == "latest" else _seq(raw)
    checkpoint = await request.app[STORE].checkpoint(seq)
    if checkpoint is None:
        raise NotFound(f"checkpoint {raw}: none")
    return web.Response(body=checkpoint.xml, content_type="application/xml", charset="utf-8")


def _seq(raw: str) -> int:
    try:
        return query.digits("seq", raw, 0, 2**63 - 1)
    except InvalidRequest:
        raise InvalidRequest(
            f"seq: an event number (digits 0-9, below 2**63) or 'latest', not {raw!r}"
        ) from None


def setup(app: web.Application) -> None:
    """Add this module's routes (and resources) to the app."""
    app.router.add_get("/v1/audit/events", list_events)
    app.router.add_get("/v1/audit/messages/{id}", message_trail)
    app.router.add_get("/v1/audit/export", export_events)
    app.router.add_get("/v1/audit/verify", verify)
    app.router.add_get("/v1/audit/checkpoints", list_checkpoints)
    app.router.add_get("/v1/audit/checkpoints/{seq}", get_checkpoint)
