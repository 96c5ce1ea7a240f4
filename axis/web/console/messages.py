"""Messages: the search, a message's page, its receipt and (administrators) its body.

The search takes a message id or a DocumentId, a sender and a recipient (a code, or a name
with or without diacritics; when a name fits several agencies the page offers them), a period
in Vietnam days, a kind and a delivery state (or "receipt overdue"). The store drives each
search from the most selective index and pages newest first (``ConsoleStore.search_messages``).

A message's page shows what the API's ``GET /v1/messages/{id}`` shows an administrator (the
same record and deadline rules), what vouched for it, and its audit trail with hashes. Bodies
are not shown: an administrator may download one, which is recorded (``body_downloaded``)
before a byte goes out; an auditor may not.
"""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from axis import timeutil
from axis.errors import InvalidRequest, NotFound
from axis.lifecycle import RECEIPT_CODES
from axis.model import DELIVERY_STATES, AuditFilter, MessageKind, MessageQuery
from axis.web.agencies import DEADLINE, is_overdue, receipt_due, visible_record
from axis.web.console import forms, i18n
from axis.web.console.auth import page
from axis.web.console.render import Viewer, render
from axis.web.keys import REGISTRY, STORE
from axis.web.ops import signed_receipt

PAGE = 50
TRAIL = 500  # audit events shown on a message's page (the Audit page has them all)
STATES = (*DELIVERY_STATES, "overdue")


@page(section="messages")
async def search(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    store = request.app[STORE]
    registry = await request.app[REGISTRY].current()
    q = forms.text(request, "q")
    sender = forms.resolve(registry, forms.text(request, "sender"))
    recipient = forms.resolve(registry, forms.text(request, "recipient"))
    kind = forms.text(request, "kind") or None
    if kind not in (None, "edoc", "status"):
        raise InvalidRequest(f"kind: edoc or status, not {kind!r}")
    state = forms.text(request, "state") or None
    if state is not None and state not in STATES:
        raise InvalidRequest(f"state: one of {', '.join(STATES)}, not {state!r}")
    since, until = forms.period(request)
    cursor = forms.text(request, "cursor") or None
    asked = bool(q or sender.typed or recipient.typed or kind or state or since or until)
    result = None
    ambiguous = sender.choices or recipient.choices or sender.problem or recipient.problem
    if not ambiguous:
        now = timeutil.now()
        query = MessageQuery(
            message_id=q if q.startswith("msg_") else None,
            document_id=q if q and not q.startswith("msg_") else None,
            from_id=sender.code,
            to_id=recipient.code,
            kind=cast(MessageKind | None, kind),
            state=state,
            since=since,
            until=until,
            overdue_before=request.app[DEADLINE].cutoff(now) if state == "overdue" else None,
        )
        result = await store.search_messages(query, cursor=cursor, limit=PAGE)
    params = {
        "q": q,
        "sender": sender.typed,
        "recipient": recipient.typed,
        "kind": kind,
        "state": state,
        "from": forms.text(request, "from"),
        "to": forms.text(request, "to"),
    }
    return render(
        request,
        "messages.html",
        {
            "params": params,
            "asked": asked,
            "result": result,
            "sender": sender,
            "recipient": recipient,
            "registry": registry,
            "states": STATES,
            "first_page": cursor is None,
        },
        viewer=viewer,
        section="messages",
    )


async def _record(request: web.Request, viewer: Viewer) -> Any:
    message_id = request.match_info["id"]
    record = await request.app[STORE].message(message_id)
    visible = visible_record(record, viewer.principal) if record else None
    if visible is None:
        raise NotFound(f"message {message_id}: no such message")
    return visible


@page(section="messages")
async def message(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    store = request.app[STORE]
    record = await _record(request, viewer)
    registry = await request.app[REGISTRY].current()
    facts = await store.message_facts(record.id)
    due = receipt_due(request.app, record)
    now = timeutil.now()
    trail = await store.audit_events(AuditFilter(message_id=record.id), cursor=None, limit=TRAIL)
    signer = None
    if facts is not None and facts.signer_sha256:
        sender = registry.get(record.from_id)
        for cert in sender.certificates if sender else ():
            if cert.sha256 == facts.signer_sha256:
                signer = cert
    recipients = [
        {
            "view": r,
            "overdue": is_overdue(r, due, now),
            "receipt": next((s for s in r.statuses if s.code in RECEIPT_CODES), None),
        }
        for r in record.recipients
    ]
    return render(
        request,
        "message.html",
        {
            "record": record,
            "facts": facts,
            "signer": signer,
            "due": due,
            "recipients": recipients,
            "trail": trail,
            "trail_limit": TRAIL,
            "registry": registry,
            "authenticated_by": getattr(record, "authenticated_by", "signature"),
            "system_id": getattr(record, "system_id", None),
            "i18n": i18n,
        },
        viewer=viewer,
        section="messages",
    )


@page(section="messages")
async def receipt(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The signed receipt, the one the sender fetches from the API (signed now)."""
    record = await _record(request, viewer)
    return web.Response(
        body=signed_receipt(request.app, record),
        content_type="application/xml",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="receipt-{record.id}.xml"',
            "Cache-Control": "no-store",
        },
    )


@page(admin=True, section="messages")
async def body(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The exact bytes for an administrator; the audit event is written first."""
    message_id = request.match_info["id"]
    got = await request.app[STORE].download_body(message_id, actor=viewer.actor)
    if got is None:
        raise NotFound(f"message {message_id}: no such message")
    headers = {
        "Content-Disposition": f'attachment; filename="{message_id}.edxml"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if got.body is not None:
        return web.Response(body=got.body, content_type="application/xml", headers=headers)
    if got.body_file is None:
        purged = await request.app[STORE].body_purged_at(message_id)
        raise NotFound(
            f"message {message_id}: its body was purged under the retention policy"
            f" ({purged}; sha256 {got.sha256}); its trail and receipt remain"
        )
    headers["Content-Type"] = "application/xml"
    return web.FileResponse(got.body_file, headers=headers)
