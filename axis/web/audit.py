"""HTTP endpoints: auditors' read-only views of the audit log (issue 6).

Also the two background duties of the log, run with the app: signing the chain head every
``AXIS_AUDIT_CHECKPOINT_INTERVAL`` seconds and once more on shutdown, and purging message
bodies older than ``AXIS_RETENTION_DAYS`` (when set).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web

from axis import audit, log, timeutil
from axis.audit import Checkpoint, StoredEvent
from axis.errors import InvalidRequest, NotFound
from axis.signing import AxisKey
from axis.store.base import Role
from axis.store.proto_audit import AuditFilter
from axis.store.protocol import Store
from axis.web import query
from axis.web.agencies import json_response
from axis.web.keys import AXIS_CERTIFICATES, AXIS_KEY, SETTINGS, STORE
from axis.web.middleware import require

_log = log.get("axis.audit")
AUDITORS: tuple[Role, ...] = ("auditor", "admin")
CHECKPOINT_ACTOR = "axis"
RETENTION_ACTOR = "axis:retention"
EXPORT_BATCH = 1000
_FORMATS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv", "csv"),
}


async def make_checkpoint(store: Store, key: AxisKey, *, actor: str) -> Checkpoint | None:
    """Sign the chain head and keep the checkpoint; None when nothing new needs signing."""
    head = await store.checkpoint_due()
    if head is None:
        return None
    seq, head_hash = head
    at = timeutil.fmt(timeutil.now())
    xml = key.sign_enveloped(audit.checkpoint_element(seq, head_hash, at, issuer="axis"))
    checkpoint = Checkpoint(seq, head_hash, at, xml)
    if not await store.add_checkpoint(checkpoint, actor=actor):
        return None
    _log.info("audit_checkpoint", seq=seq, hash=head_hash)
    return checkpoint


def _filter(request: web.Request) -> AuditFilter:
    def text(name: str) -> str | None:
        return request.query.get(name) or None

    return AuditFilter(
        organ_id=text("organ_id"),
        document_id=text("document_id"),
        message_id=text("message_id"),
        type=text("type"),
        since=query.time(request, "since"),
        until=query.time(request, "until"),
    )


async def list_events(request: web.Request) -> web.Response:
    """A page of events in ``seq`` order, by the contract's filters."""
    await require(request, *AUDITORS)
    page = await request.app[STORE].audit_events(
        _filter(request), cursor=request.query.get("cursor"), limit=query.limit(request)
    )
    return json_response(
        {"items": [e.to_json() for e in page.items], "next_cursor": page.next_cursor}
    )


async def message_trail(request: web.Request) -> web.Response:
    """Everything that happened to one message, for every recipient, in ``seq`` order."""
    await require(request, *AUDITORS)
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
    name = query.choice(request, "format", tuple(_FORMATS)) or "jsonl"
    where = _filter(request)
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
    page = await request.app[STORE].checkpoints(
        cursor=request.query.get("cursor"), limit=query.limit(request)
    )
    return json_response(
        {"items": [c.to_json() for c in page.items], "next_cursor": page.next_cursor}
    )


async def get_checkpoint(request: web.Request) -> web.Response:
    """One signed checkpoint document (``latest`` or an event ``seq``), as ``application/xml``."""
    await require(request, *AUDITORS)
    raw = request.match_info["seq"]
    if raw == "latest":
        seq = None
    else:
        try:
            seq = int(raw)
            if not 0 <= seq < 2**63:
                raise ValueError(raw)
        except ValueError:
            raise InvalidRequest(f"seq: an event number or 'latest', not {raw!r}") from None
    checkpoint = await request.app[STORE].checkpoint(seq)
    if checkpoint is None:
        raise NotFound(f"checkpoint {raw}: none")
    return web.Response(body=checkpoint.xml, content_type="application/xml", charset="utf-8")


async def _checkpoints(app: web.Application) -> AsyncIterator[None]:
    """Sign the head at every interval, and once more on the way out."""
    store, key = app[STORE], app[AXIS_KEY]
    interval = app[SETTINGS].audit_checkpoint_interval

    async def sign() -> None:
        try:
            await make_checkpoint(store, key, actor=CHECKPOINT_ACTOR)
        except Exception as exc:  # the next round tries again; the log itself is intact
            _log.error("audit_checkpoint_failed", error=str(exc))

    async def every_interval() -> None:
        while True:
            await asyncio.sleep(interval)
            await sign()

    task = asyncio.create_task(every_interval()) if interval > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await sign()


async def _retention(app: web.Application) -> AsyncIterator[None]:
    """Purge old bodies now and then (hourly, or more often for short retention periods)."""
    days = app[SETTINGS].retention_days
    if days <= 0:
        yield
        return
    store = app[STORE]
    age = timedelta(days=days)
    pause = min(3600.0, max(1.0, age.total_seconds() / 4))

    async def run() -> None:
        while True:
            try:
                await store.purge_bodies(timeutil.now() - age, actor=RETENTION_ACTOR)
            except Exception as exc:
                _log.error("retention_failed", error=str(exc))
            await asyncio.sleep(pause)

    task = asyncio.create_task(run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    """Add this module's routes (and resources) to the app."""
    app.router.add_get("/v1/audit/events", list_events)
    app.router.add_get("/v1/audit/messages/{id}", message_trail)
    app.router.add_get("/v1/audit/export", export_events)
    app.router.add_get("/v1/audit/verify", verify)
    app.router.add_get("/v1/audit/checkpoints", list_checkpoints)
    app.router.add_get("/v1/audit/checkpoints/{seq}", get_checkpoint)
    app.cleanup_ctx.append(_checkpoints)
    app.cleanup_ctx.append(_retention)
