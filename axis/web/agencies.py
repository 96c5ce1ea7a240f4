"""Agencies' endpoints: send, follow, receive, acknowledge, and the directory."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import orjson
from aiohttp import web

from axis import cursor, lifecycle, log, timeutil
from axis.errors import AxisError, InvalidRequest, NotFound
from axis.intake import Intake
from axis.model import (
    AcceptResult,
    AckResult,
    Body,
    LinkView,
    MessageKind,
    MessageRecord,
    Principal,
    RecipientView,
)
from axis.registry import STATUSES
from axis.web.body import read_json_body, read_xml_body
from axis.web.keys import METRICS, REGISTRY, SETTINGS, STORE
from axis.web.middleware import principal, require_agency
from axis.web.query import PAGING, Query

_log = log.get("axis.web")
INTAKE = web.AppKey("intake", Intake)
DEADLINE = web.AppKey("receipt_deadline", lifecycle.ReceiptDeadline)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def _link_json(link: LinkView) -> dict[str, Any]:
    return {
        "message_id": link.message_id,
        "relation": link.relation,
        "kind": link.kind,
        "document_id": link.document_id,
    }


def is_overdue(r: RecipientView, overdue_at: datetime | None, now: datetime) -> bool:
    """Past the receipt deadline with no receipt yet (01, 02 or 03: a refusal is an answer)."""
    return (
        overdue_at is not None
        and now > overdue_at
        and not any(s.code in lifecycle.RECEIPT_CODES for s in r.statuses)
    )


def _recipient_json(r: RecipientView, overdue_at: datetime | None) -> dict[str, Any]:
    """A recipient's row of ``GET /v1/messages/{id}``: where its delivery stands now."""
    return {
        "organ_id": r.organ_id,
        "delivered_to": r.delivered_to,
        "delivery_id": r.delivery_id,
        "state": r.state,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "updated_at": r.updated_at,
        "statuses": [
            {
                "code": s.code,
                "at": s.at,
                "message_id": s.message_id,
                "received_at": s.received_at,
                "inconsistent": s.inconsistent,
            }
            for s in r.statuses
        ],
        "overdue": is_overdue(r, overdue_at, timeutil.now()),
        "receipt_due_at": timeutil.fmt(overdue_at) if overdue_at is not None else None,
    }


def accepted_json(record: MessageRecord) -> dict[str, Any]:
    """The answer to a send, the same for the first send and for any identical resend.

    The contract answers a resend with "the original answer", so each delivery shows the
    state it had when the package was accepted (``queued``) even if its recipient has since
    fetched or acknowledged it: where it stands now is ``GET /v1/messages/{id}``. Documents
    and status packets carry the same keys, ``null`` where one does not apply.
    """
    return {
        "id": record.id,
        "kind": record.kind,
        "document_id": record.document_id,
        "business_type": record.business_type if record.kind == "edoc" else None,
        "status_code": record.status_code if record.kind == "status" else None,
        "from": record.from_id,
        "sha256": record.sha256,
        "size": record.size,
        "received_at": record.received_at,
        "recipients": [
            {
                "organ_id": r.organ_id,
                "delivered_to": r.delivered_to,
                "delivery_id": r.delivery_id,
                "state": "queued",
            }
            for r in record.recipients
        ],
        "receipt_url": f"/v1/messages/{record.id}/receipt",
    }


MAX_REASON = 2000  # an ack's reason is shown to the sender and kept in the audit log


async def post_edoc(request: web.Request) -> web.Response:
    return await _post_packet(request, "edoc")


async def post_status(request: web.Request) -> web.Response:
    return await _post_packet(request, "status")


async def _post_packet(request: web.Request, kind: MessageKind) -> web.Response:
    who, _ = await require_agency(request)
    Query(request)  # no query parameters: any one is refused by name
    try:
        body = await read_xml_body(request, request.app[SETTINGS])
    except AxisError as exc:
        await record_rejection(request, who, kind, exc, None)
        raise
    result = await take_packet(request, who, kind, body)
    location = {"Location": f"/v1/messages/{result.record.id}"}
    return json_response(accepted_json(result.record), 201 if result.created else 200, location)


async def take_packet(
    request: web.Request, who: Principal, kind: MessageKind, body: Body
) -> AcceptResult:
    """A received package through the intake, whichever API brought it (``/v1``, ``/vxp``):
    a refused one leaves its audit event and its spool file is removed."""
    try:
        registry = await request.app[REGISTRY].current()
        intake = request.app[INTAKE]
        if kind == "edoc":
            result = await intake.accept_edoc(body, who, registry)
        else:
            result = await intake.accept_status(body, who, registry)
    except AxisError as exc:
        body.discard()
        await record_rejection(request, who, kind, exc, body)
        raise
    except BaseException:
        body.discard()
        raise
    outcome = "created" if result.created else "repeat"
    request.app[METRICS].inc("axis_messages_total", kind=kind, outcome=outcome)
    return result


async def record_rejection(
    request: web.Request, who: Principal, kind: MessageKind, exc: AxisError, body: Body | None
) -> None:
    """An authenticated agency's refused package leaves an audit event with its reason."""
    try:
        await request.app[STORE].record_rejection(
            actor=who.actor,
            organ_id=who.organ_id or "",
            kind=kind,
            code=exc.code,
            reason=exc.detail,
            sha256=body.sha256 if body else None,
            size=body.size if body else None,
        )
    except Exception as err:
        _log.error("audit_rejection_unrecorded", code=exc.code, error=str(err))


def _sees_all(record: MessageRecord, who: Principal) -> bool:
    return who.role in ("admin", "auditor") or record.from_id == who.organ_id


def visible_record(record: MessageRecord, who: Principal) -> MessageRecord | None:
    """What the caller may see of a message: the sender all, a recipient its own row."""
    if _sees_all(record, who):
        return record
    own = tuple(r for r in record.recipients if r.delivered_to == who.organ_id)
    if not own:
        return None
    return replace(
        record,
        recipients=own,
        # other recipients' statuses are theirs and the sender's business
        referred_by=tuple(link for link in record.referred_by if link.kind == "edoc"),
    )


async def load_visible(request: web.Request) -> MessageRecord:
    who = await principal(request)
    Query(request)
    message_id = request.match_info["id"]
    record = await request.app[STORE].message(message_id)
    visible = visible_record(record, who) if record else None
    if visible is None:
        raise NotFound(f"message {message_id}: no such message for this caller")
    return visible


async def _links_seen(request: web.Request, record: MessageRecord) -> tuple[LinkView, ...]:
    """What refers to ``record``, as the caller may see it: a recipient learns of a
    revocation, update or replacement only if it received that too."""
    who = await principal(request)
    if _sees_all(record, who):
        return record.referred_by
    kept = []
    for link in record.referred_by:
        other = await request.app[STORE].message(link.message_id)
        if other is not None and visible_record(other, who) is not None:
            kept.append(link)
    return tuple(kept)


def receipt_due(app: web.Application, record: MessageRecord) -> datetime | None:
    """When the recipients of a document must have reported receipt; None for a status."""
    if record.kind != "edoc":
        return None
    return app[DEADLINE].due(datetime.fromisoformat(record.received_at))


async def get_message(request: web.Request) -> web.Response:
    record = await load_visible(request)
    referred_by = await _links_seen(request, record)
    due = receipt_due(request.app, record)
    body: dict[str, Any] = {
        "id": record.id,
        "kind": record.kind,
        "document_id": record.document_id,
        "from": record.from_id,
        "sha256": record.sha256,
        "size": record.size,
        "received_at": record.received_at,
        "recipients": [_recipient_json(r, due) for r in record.recipients],
        "refers_to": [_link_json(link) for link in record.refers_to],
        "referred_by": [_link_json(link) for link in referred_by],
        "business_type": record.business_type if record.kind == "edoc" else None,
        "status_code": record.status_code if record.kind == "status" else None,
        "authenticated_by": record.authenticated_by,
        "system": record.system_id,
    }
    return json_response(body)


async def get_outbox(request: web.Request) -> web.Response:
    _, organ_id = await require_agency(request)
    q = Query(request, "since", "until", "document_id", "overdue", *PAGING)
    overdue = q.flag("overdue")
    page = await request.app[STORE].outbox(
        organ_id,
        since=q.time("since"),
        until=q.time("until"),
        document_id=q.text("document_id"),
        cursor=q.cursor(),
        limit=q.limit(),
        overdue_before=request.app[DEADLINE].cutoff(timeutil.now()) if overdue else None,
    )
    items = [
        {
            "id": r.id,
            "kind": r.kind,
            "document_id": r.document_id,
            "received_at": r.received_at,
            "recipients": [{"organ_id": x.organ_id, "state": x.state} for x in r.recipients],
        }
        for r in page.items
    ]
    return json_response({"items": items, "next_cursor": page.next_cursor})


async def get_inbox(request: web.Request) -> web.Response:
    _, organ_id = await require_agency(request)
    store = request.app[STORE]
    q = Query(request, "kind", "wait", *PAGING)
    kind = cast(MessageKind | None, q.choice("kind", ("edoc", "status")))
    wait = q.seconds("wait", 0.0, 0.0, 60.0)
    cursor = q.cursor()
    limit = q.limit()
    page = await store.inbox(organ_id, kind=kind, cursor=cursor, limit=limit)
    if not page.items and wait > 0:
        deadline = time.monotonic() + wait
        while not page.items:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await store.wait_for_mail(organ_id, remaining)
            page = await store.inbox(organ_id, kind=kind, cursor=cursor, limit=limit)
    items = [
        {
            "id": m.id,
            "kind": m.kind,
            "from": m.from_id,
            "document_id": m.document_id,
            "status_code": m.status_code,
            "sha256": m.sha256,
            "size": m.size,
            "received_at": m.received_at,
            "authenticated_by": m.authenticated_by,
            "system": m.system_id,
        }
        for m in page.items
    ]
    return json_response({"items": items, "next_cursor": page.next_cursor})


async def fetch_message(request: web.Request) -> web.StreamResponse:
    who, organ_id = await require_agency(request)
    Query(request)
    message_id = request.match_info["id"]
    fetched = await request.app[STORE].fetch(message_id, organ_id, actor=who.actor)
    if fetched is None:
        raise NotFound(f"message {message_id}: not in the inbox of {organ_id}")
    digest = base64.b64encode(bytes.fromhex(fetched.sha256)).decode()
    headers = {
        "X-Axis-Message-Id": fetched.message_id,
        "X-Axis-From": fetched.from_id,
        "X-Axis-Kind": fetched.kind,
        "Repr-Digest": f"sha-256=:{digest}:",
        "Content-Type": "application/xml",
    }
    if fetched.body is not None:
        return web.Response(body=fetched.body, headers=headers)
    if fetched.body_file is None:
        raise NotFound(
            f"message {message_id}: its body was purged under the retention policy"
            f" (sha256 {fetched.sha256}); its trail and receipt remain"
        )
    return web.FileResponse(fetched.body_file, headers=headers)


async def ack_message(request: web.Request) -> web.Response:
    who, organ_id = await require_agency(request)
    Query(request)
    message_id = request.match_info["id"]
    data = await read_json_body(
        request, request.app[SETTINGS], '{"result": "done" | "fail", "reason": "…"}'
    )
    if not isinstance(data, dict) or data.get("result") not in ("done", "fail"):
        raise InvalidRequest('result: "done" or "fail"')
    unknown = sorted(set(data) - {"result", "reason"})
    if unknown:
        raise InvalidRequest(f"unknown members {unknown}; an ack has result and reason")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidRequest("reason: a string")
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidRequest(f"reason: at most {MAX_REASON} characters, not {len(reason)}")
    result = cast(AckResult, data["result"])
    try:
        row = await request.app[STORE].ack(message_id, organ_id, result, reason, actor=who.actor)
    except LookupError:
        raise NotFound(f"message {message_id}: not in the inbox of {organ_id}") from None
    return json_response(
        {"id": message_id, "organ_id": organ_id, "state": row.state, "updated_at": row.updated_at}
    )


async def get_agencies(request: web.Request) -> web.Response:
    await principal(request)
    q = Query(request, "status", "kind", "q", *PAGING)
    registry = await request.app[REGISTRY].current()
    status = q.choice("status", STATUSES)
    matches = registry.search(q.text("q"), status=status, kind=q.text("kind"))
    limit = q.limit()
    start = cursor.after_number(q.cursor()) or 0
    chunk = matches[start : start + limit]
    after = start + limit
    next_cursor = cursor.encode(after) if after < len(matches) else None
    return json_response({"items": [a.public_json() for a in chunk], "next_cursor": next_cursor})


def setup(app: web.Application) -> None:
    app[INTAKE] = Intake(app[SETTINGS], app[STORE])
    app[DEADLINE] = lifecycle.ReceiptDeadline.parse(app[SETTINGS].receipt_deadline)
    app.router.add_post("/v1/edocs", post_edoc)
    app.router.add_post("/v1/statuses", post_status)
    app.router.add_get("/v1/messages/{id}", get_message)
    app.router.add_get("/v1/outbox", get_outbox)
    app.router.add_get("/v1/inbox", get_inbox)
    app.router.add_get("/v1/inbox/{id}", fetch_message)
    app.router.add_post("/v1/inbox/{id}/ack", ack_message)
    app.router.add_get("/v1/agencies", get_agencies)
