"""The VDXP-compatible operations under ``/vxp/``: what VNPT's SDK speaks, mapped onto the axis.

Document software built on VNPT's SDK switches to the axis by changing its endpoint, its
``systemid`` and its ``secret``. Each of the 13 operations authenticates the connected system
by the HMAC over its signed headers (``axis.vdxp``), takes its parameters from the signed JSON,
and then runs exactly what ``/v1`` runs: ``sendEdoc`` is the intake of ``POST /v1/edocs`` and
``/v1/statuses`` (``agencies.take_packet``), the lists are the store's inbox and outbox over
every agency the system serves, ``getEdoc``/``downloadEdoc`` the fetch, ``updateStatus`` the
ack. One message is one message whichever API touched it.

Every answer is the SDK's JSON (``axis.vdxp_answers``), failures included: this module answers
its own errors instead of leaving them to the problem+json middleware. ``downloadEdoc`` fails
with an empty body (the SDK saves any non-empty body as the document).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from aiohttp import web

from axis import codes, lifecycle, log, vdxp
from axis import vdxp_answers as answers
from axis.errors import (
    AxisError,
    DuplicateConflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    StoreError,
    SystemUnauthorized,
    UnknownSender,
)
from axis.model import CLOSED_STATES, Body, MessageRecord, Principal, RecipientView
from axis.registry import Agency, Registry
from axis.secretbox import SecretBoxError
from axis.systems import ConnectedSystem, Systems
from axis.vdxp import Operation, Params
from axis.web.agencies import record_rejection, take_packet
from axis.web.body import XML_TYPES, read_xml_body
from axis.web.keys import LIMITER, METRICS, REGISTRY, SECRET_BOX, SETTINGS, STORE

_log = log.get("axis.vxp")
PACKAGE_TYPES = ("application/octet-stream", *XML_TYPES)
REGISTER_ACTOR_SOURCE = "vdxp:"  # an agency registered by a system is ``source: vdxp:<id>``


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated connected system, and the registry it acts in for this request."""

    system: ConnectedSystem
    params: Params
    systems: Systems
    registry: Registry

    @property
    def actor(self) -> str:
        return f"system:{self.system.id}"

    def acting_for(self, code: str) -> Principal:
        """The system acting as agency ``code``, with that agency's rights: it must serve
        the code (the most specific listing wins), and the agency must be active."""
        agency = self.registry.get(code)
        if agency is None:
            raise UnknownSender(f"from: {code} is not a registered agency")
        if not self.systems.serves(self.system, code):
            owner = self.systems.serving(code)
            by = f" (system {owner.id} serves it)" if owner is not None else ""
            raise Forbidden(f"system {self.system.id} does not serve agency {code}{by}")
        if agency.status != "active":
            raise Forbidden(f"agency {code} is {agency.status}; it may not send or receive")
        return Principal(
            token_id=self.system.id,
            role="agency",
            organ_id=code,
            system=self.system.id,
            signature_optional=self.system.signature == "optional",
        )

    served_codes: ServedCodes

    def served(self, *, active_only: bool = True) -> tuple[str, ...]:
        """Every registered agency the system serves, in code order."""
        return self.served_codes.of(self.registry, self.systems, self.system, active_only)[0]

    def serves_now(self, code: str) -> bool:
        """Whether ``code`` is an active agency the system serves (a set lookup)."""
        return code in self.served_codes.of(self.registry, self.systems, self.system, True)[1]


class ServedCodes:
    """Which registered agencies each system serves, worked out once per pair of snapshots.

    Walking every code of the registry with the most-specific-listing rule costs ~0.2 ms,
    and ``getEdoc`` and ``updateStatus`` need it on every message; the snapshots are
    immutable, so the answer holds until the registry or the systems are reloaded.
    """

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._systems: Systems | None = None
        self._by: dict[tuple[str, bool], tuple[tuple[str, ...], frozenset[str]]] = {}

    def of(
        self, registry: Registry, systems: Systems, system: ConnectedSystem, active_only: bool
    ) -> tuple[tuple[str, ...], frozenset[str]]:
        if registry is not self._registry or systems is not self._systems:
            self._registry, self._systems, self._by = registry, systems, {}
        key = (system.id, active_only)
        found = self._by.get(key)
        if found is None:
            codes = tuple(
                code
                for code, agency in sorted(registry.agencies.items())
                if (agency.status == "active" or not active_only) and systems.serves(system, code)
            )
            found = self._by[key] = (codes, frozenset(codes))
        return found


# ----------------------------------------------------------------- authentication


class _Secrets:
    """Sealed secrets opened once and kept per process (opening is cheap, but not free)."""

    def __init__(self) -> None:
        self._opened: dict[tuple[str, str], str] = {}

    def open(self, request: web.Request, system_id: str, sealed: str) -> str:
        key = (system_id, sealed)
        found = self._opened.get(key)
        if found is None:
            try:
                found = request.app[SECRET_BOX].open(sealed, system_id)
            except SecretBoxError as exc:
                _log.error("system_secret_unreadable", system=system_id, error=str(exc))
                raise SystemUnauthorized(
                    f"system {system_id}: this node cannot open its secret (its systems.key"
                    " differs from the one it was sealed under); tell the administrator"
                ) from None
            if len(self._opened) > 10_000:
                self._opened.clear()
            self._opened[key] = found
        return found


SECRETS = web.AppKey("vxp_secrets", _Secrets)
SERVED = web.AppKey("vxp_served", ServedCodes)
SEEN = web.AppKey("vxp_seen", dict)  # system id -> what it carried over, last logged


async def authenticate(request: web.Request, op: Operation) -> Caller:
    """The connected system behind a request, its HMAC checked; the operation's parameters."""
    signed = vdxp.parse_headers(request.headers.items())
    structlog.contextvars.bind_contextvars(system=signed.systemid, operation=op.name)
    cache = request.app[REGISTRY]
    systems = await cache.systems()
    system = systems.get(signed.systemid)
    if system is None:
        raise SystemUnauthorized(f"XroadVnpt-systemid: no system {signed.systemid} is registered")
    if system.status != "active":
        raise SystemUnauthorized(f"system {system.id} is disabled")
    sealed = systems.secrets[system.id]
    candidates = [request.app[SECRETS].open(request, system.id, sealed.current)]
    if sealed.previous is not None:
        candidates.append(request.app[SECRETS].open(request, system.id, sealed.previous))
    index = vdxp.verify(signed, candidates)
    if index == 0 and sealed.previous is not None:
        # the new secret is in use: the previous one stops working now, on every node
        store = request.app[STORE]
        reason = "the new secret was used"
        if await store.retire_previous_secret(
            system.id, actor=f"system:{system.id}", reason=reason
        ):
            _log.info("system_secret_retired", system=system.id, reason=reason)
        await cache.reload()
    if LIMITER in request.app:
        wait = request.app[LIMITER].take(f"system:{system.id}", time.monotonic())
        if wait:
            raise RateLimited(
                f"system {system.id} is over its {request.app[LIMITER].rate:g} requests a"
                f" second; retry after {wait:.2f} s",
                retry_after=wait,
            )
    params = vdxp.read_params(signed, op)
    _note_carried(request, system.id, params)
    return Caller(system, params, systems, await cache.current(), request.app[SERVED])


def _note_carried(request: web.Request, system_id: str, params: Params) -> None:
    """The SDK carries every header an earlier call set, and a timestamp frozen for days:
    tolerated, and logged when what it carries changes (not on every request)."""
    carried = (params.ignored, params.unsigned, params.timestamp)
    seen = request.app[SEEN]
    if seen.get(system_id) == carried:
        return
    if len(seen) > 10_000:
        seen.clear()
    seen[system_id] = carried
    if params.ignored or params.unsigned or params.timestamp_at is not None:
        _log.info(
            "vxp_carried_parameters",
            ignored=list(params.ignored),
            unsigned=list(params.unsigned),
            timestamp=params.timestamp,
        )


# ----------------------------------------------------------------- the operations


async def _pick_delivery(request: web.Request, caller: Caller, doc_id: str) -> str:
    """The recipient a system's ``docId`` means: a delivery to an agency it serves, the
    earliest still open (a message to two agencies one system serves is listed twice)."""
    rows = [
        (code, state)
        for code, state in await request.app[STORE].delivery_states(doc_id)
        if caller.serves_now(code)
    ]
    if not rows:
        raise NotFound(f"docId {doc_id}: no message to an agency system {caller.system.id} serves")
    return next((code for code, state in rows if state not in CLOSED_STATES), rows[0][0])


async def send_edoc(request: web.Request, caller: Caller) -> answers.Answer:
    params = caller.params
    assert params.from_code is not None
    assert params.hash_file is not None
    who = caller.acting_for(params.from_code)
    kind = params.messagetype or "edoc"
    digest = vdxp.BodyDigest()
    try:
        body = await read_xml_body(
            request, request.app[SETTINGS], media_types=PACKAGE_TYPES, also=digest.update
        )
        stored = vdxp.stored_body(params.hash_file, digest)
    except AxisError as exc:
        await record_rejection(request, who, kind, exc, None)
        raise
    if stored.stripped and body.data is not None:  # in memory: a slice, no thread hop
        body = Body(body.data[: stored.size], None, stored.sha256, stored.size)
    elif stored.stripped:
        body = await asyncio.to_thread(_without_sdk_crlf, body, stored.size, stored.sha256)
    result = await take_packet(request, who, kind, body)
    return answers.success("sendEdoc", DocId=result.record.id)


def _without_sdk_crlf(body: Body, size: int, sha256: str) -> Body:
    """The spooled package without the CRLF the SDK appended: the bytes its hash-file names."""
    assert body.path is not None
    with body.path.open("r+b") as fh:
        fh.truncate(size)
    return Body(None, body.path, sha256, size)


def _pending_codes(caller: Caller) -> list[str]:
    """The agencies a list or count covers: every one served, or the one ``to`` names when
    it is one of them (a ``to`` carried over from a ``sendEdoc`` names recipients, and is
    ignored)."""
    to = caller.params.to
    if len(to) == 1 and caller.serves_now(to[0]):
        return [to[0]]
    return list(caller.served())


async def received_list(request: web.Request, caller: Caller) -> answers.Answer:
    params = caller.params
    items = await request.app[STORE].pending(
        _pending_codes(caller),
        kind=params.messagetype,
        since=params.from_date,
        until=params.to_date,
        offset=params.offset,
        limit=params.page_size,
    )
    data = [
        answers.inbox_item(
            doc_id=p.message_id,
            kind=p.kind,
            from_code=p.from_id,
            to_code=p.delivered_to,
            created=p.received_at,
            updated=p.updated_at,
            state=p.state,
            processing=p.processing,
        )
        for p in items
    ]
    return answers.success(caller.params.operation, data=data)


async def count_received(request: web.Request, caller: Caller) -> answers.Answer:
    params = caller.params
    total = await request.app[STORE].pending_count(
        _pending_codes(caller),
        kind=params.messagetype,
        since=params.from_date,
        until=params.to_date,
    )
    return answers.success(params.operation, count=total)


async def _fetch(request: web.Request, caller: Caller) -> tuple[bytes | Path, str]:
    """The exact bytes of ``docId`` for the agency it is delivered to (its first fetch moves
    the delivery to ``fetched``, with its audit event, as ``GET /v1/inbox/{id}`` does)."""
    doc_id = caller.params.doc_id
    assert doc_id is not None
    store = request.app[STORE]
    to = await _pick_delivery(request, caller, doc_id)
    who = caller.acting_for(to)
    fetched = await store.fetch(doc_id, to, actor=who.actor)
    if fetched is None:
        raise NotFound(f"docId {doc_id}: not in the inbox of {to}")
    if fetched.body is not None:
        return fetched.body, fetched.sha256
    if fetched.body_file is None:
        raise NotFound(
            f"docId {doc_id}: its body was purged under the retention policy"
            f" (sha256 {fetched.sha256}); its trail and receipt remain"
        )
    return fetched.body_file, fetched.sha256


async def get_edoc(request: web.Request, caller: Caller) -> answers.Answer:
    body, _ = await _fetch(request, caller)
    if isinstance(body, bytes):
        data = base64.b64encode(body)
    else:  # a large body: read and encoded off the event loop
        data = await asyncio.to_thread(lambda: base64.b64encode(body.read_bytes()))
    return answers.success("getEdoc", data=data.decode("ascii"))


async def download_edoc(request: web.Request, caller: Caller) -> web.StreamResponse:
    body, sha256 = await _fetch(request, caller)
    digest = base64.b64encode(bytes.fromhex(sha256)).decode()
    headers = {"Repr-Digest": f"sha-256=:{digest}:", "Content-Type": "application/xml"}
    if isinstance(body, bytes):
        return web.Response(body=body, headers=headers)
    return web.FileResponse(body, headers=headers)


async def update_status(request: web.Request, caller: Caller) -> answers.Answer:
    params = caller.params
    assert params.doc_id is not None
    assert params.status is not None
    store = request.app[STORE]
    to = await _pick_delivery(request, caller, params.doc_id)
    who = caller.acting_for(to)
    try:
        if params.status == "processing":
            await store.mark_processing(params.doc_id, to, actor=who.actor)
        else:
            await store.ack(params.doc_id, to, params.status, None, actor=who.actor)
    except LookupError:
        raise NotFound(f"docId {params.doc_id}: not delivered to {to}") from None
    except DuplicateConflict as exc:
        raise DuplicateConflict(f"status: {exc.detail}") from None
    return answers.success(params.operation)


async def sent_list(request: web.Request, caller: Caller) -> answers.Answer:
    params = caller.params
    store = request.app[STORE]
    mine = caller.served(active_only=False)
    if params.doc_id is not None:
        record = await store.message(params.doc_id)
        if record is None or record.from_id not in mine:
            raise NotFound(
                f"docId {params.doc_id}: no message sent by an agency system"
                f" {caller.system.id} serves"
            )
        records = [record]
    else:
        records = await store.sent(
            mine,
            since=params.from_date,
            until=params.to_date,
            offset=params.offset,
            limit=params.page_size,
        )
    data = [_sent_item(record, row) for record in records for row in record.recipients]
    return answers.success(params.operation, data=data)


def _sent_item(record: MessageRecord, row: RecipientView) -> dict[str, object]:
    statuses = lifecycle.ordered(row.statuses)
    received = row.updated_at if row.state not in ("queued", "retrying", "dead") else None
    return answers.sent_item(
        sender_doc_id=record.id,
        receiver_doc_id=row.delivery_id,
        kind=record.kind,
        from_code=record.from_id,
        to_code=row.delivered_to,
        title=record.subject,
        notation=record.notation,
        sent=record.received_at,
        received=received,
        state=row.state,
        latest_code=statuses[-1].code if statuses else None,
    )


def _directory_entry(agency: Agency) -> dict[str, object]:
    return {
        "id": str(agency.number) if agency.number is not None else agency.organ_id,
        "code": agency.organ_id,
        "name": agency.name,
    }


async def agencies_list(request: web.Request, caller: Caller) -> answers.Answer:
    predecessor: dict[str, str] = {}
    for code, agency in sorted(caller.registry.agencies.items()):
        if agency.status == "closed" and agency.successor:
            predecessor.setdefault(agency.successor, code)
    data = [
        {
            **_directory_entry(agency),
            "pid": agency.parent or "",
            "oldCode": predecessor.get(agency.organ_id),
        }
        for _, agency in sorted(caller.registry.agencies.items())
        if agency.status != "closed"
    ]
    return answers.success(caller.params.operation, data=data)


async def agencies_qd20(request: web.Request, caller: Caller) -> answers.Answer:
    level = caller.params.level
    data = [
        {**_directory_entry(agency), "code102": agency.organ_id}
        for code, agency in sorted(caller.registry.agencies.items())
        if agency.status != "closed" and _level(code) == level
    ]
    return answers.success(caller.params.operation, data=data)


def _level(code: str) -> int | None:
    try:
        return codes.level(code)
    except InvalidRequest:
        return None


async def synchronize_unit(request: web.Request, caller: Caller) -> answers.Answer:
    data = []
    for code, agency in sorted(caller.registry.agencies.items()):
        serving = caller.systems.serving(code)
        data.append(
            {
                **_directory_entry(agency),
                "pid": agency.parent or "",
                "centerCode": serving.id if serving is not None else "",
                "modifyDate": answers.vn_time(agency.updated_at or None),
                "version": agency.version,
                "deleted": agency.status == "closed",
                "isAgency": True,
            }
        )
    return answers.success(caller.params.operation, data=data)


def _may_register(caller: Caller) -> None:
    if not caller.system.register:
        raise Forbidden(
            f"system {caller.system.id} may not register or delete agencies; an administrator"
            " grants it (register: true)"
        )


async def register_agency(request: web.Request, caller: Caller) -> answers.Answer:
    _may_register(caller)
    raw = await request.content.read(vdxp.MAX_REGISTRATION_BYTES + 1)
    wanted = vdxp.parse_registration(raw)
    parent = caller.acting_for(wanted.pcode)  # served by this system, active
    ancestors = codes.ancestors(wanted.code)
    if wanted.pcode not in ancestors:
        raise InvalidRequest(
            f"registerAgency: {wanted.code} is not a descendant of {wanted.pcode} by the code"
            " rules (a level's part zeroed gives its parent)"
        )
    registry = caller.registry
    serving = caller.systems.serving(wanted.code)
    if serving is not None and serving.id != caller.system.id:
        raise Forbidden(f"registerAgency: {wanted.code} is served by system {serving.id}")
    source = f"{REGISTER_ACTOR_SOURCE}{caller.system.id}"
    existing = registry.get(wanted.code)
    if existing is not None:
        ours = existing.source == source
        if existing.status == "active" and existing.name == wanted.name:
            return answers.success("registerAgency")  # the same record again
        if not ours:
            raise DuplicateConflict(
                f"registerAgency: {wanted.code} is registered already (as {existing.name!r},"
                f" {existing.status}); an administrator changes it"
            )
        agency = replace(existing, name=wanted.name, status="active", successor=None)
    else:
        pcode_agency = registry.get(wanted.pcode)
        assert pcode_agency is not None  # acting_for checked it
        nearest = next((a for a in ancestors if registry.get(a) is not None), wanted.pcode)
        agency = Agency(
            organ_id=wanted.code,
            name=wanted.name,
            kind=pcode_agency.kind,
            parent=nearest,
            source=source,
        )
    store = request.app[STORE]
    await store.save_agency(agency, actor=parent.actor)
    await request.app[REGISTRY].reload()
    _log.info("agency_registered_by_system", organ_id=wanted.code, parent=wanted.pcode)
    return answers.success("registerAgency")


async def delete_agency(request: web.Request, caller: Caller) -> answers.Answer:
    _may_register(caller)
    code = caller.params.agency_code
    assert code is not None
    agency = caller.registry.get(code)
    if agency is None:
        raise NotFound(f"AgencyCode: {code} is not a registered agency")
    if codes.level(code) == 1:
        raise Forbidden(f"AgencyCode: {code} is a level-1 code; only administrators close those")
    if not caller.systems.serves(caller.system, code):
        raise Forbidden(f"system {caller.system.id} does not serve agency {code}")
    if agency.status != "closed":
        closed = replace(agency, status="closed", successor=None)
        await request.app[STORE].save_agency(closed, actor=caller.actor)
        await request.app[REGISTRY].reload()
        _log.info("agency_closed_by_system", organ_id=code)
    return answers.success("deleteAgency")


Handler = Callable[[web.Request, Caller], Awaitable[answers.Answer | web.StreamResponse]]
HANDLERS: dict[str, Handler] = {
    "sendEdoc": send_edoc,
    "getReceivedEdocList": received_list,
    "countReceiveEdoc": count_received,
    "countReceiveStatus": count_received,
    "getSentEdocList": sent_list,
    "getEdoc": get_edoc,
    "downloadEdoc": download_edoc,
    "updateStatus": update_status,
    "getAgenciesList": agencies_list,
    "getAgenciesListQD20": agencies_qd20,
    "getSynchronizeUnit": synchronize_unit,
    "registerAgency": register_agency,
    "deleteAgency": delete_agency,
}


# ----------------------------------------------------------------- the one entry


def _response(answer: answers.Answer) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body, headers=dict(answer.headers))
    response.headers["Content-Type"] = answer.content_type
    if answer.closes_connection:
        response.force_close()
    return response


async def operation(request: web.Request) -> web.StreamResponse:
    """``/vxp/<operation>``: authenticate, run, answer in the SDK's JSON whatever happens."""
    op = vdxp.OPERATIONS[request.path.removeprefix("/vxp/")]
    if request.query_string:
        detail = f"/vxp/{op.name}: the operations take no query string; parameters are headers"
        return _response(answers.failure_code(op, "invalid_request", detail))
    try:
        caller = await authenticate(request, op)
        result = await HANDLERS[op.name](request, caller)
    except AxisError as exc:
        request.app[METRICS].inc("axis_errors_total", code=exc.code)
        level = "debug" if isinstance(exc, RateLimited) else "info"
        getattr(_log, level)(
            "request_refused",
            code=exc.code,
            status=exc.status,
            method=request.method,
            path=request.path,
            detail=exc.detail[:500],
        )
        return _response(answers.failure(op, exc))
    except StoreError as exc:
        _log.error("store_unavailable", error=str(exc), path=request.path)
        detail = "nothing was stored; retry later"
        return _response(answers.failure_code(op, "unavailable", detail, {"Retry-After": "5"}))
    except Exception:
        _log.exception("request_crashed", path=request.path, method=request.method)
        request_id = structlog.contextvars.get_contextvars().get("request_id", "")
        detail = f"request {request_id} failed; see the axis's logs"
        return _response(answers.failure_code(op, "internal_error", detail))
    if isinstance(result, web.StreamResponse):
        return result
    return _response(result)


def setup(app: web.Application) -> None:
    app[SECRETS] = _Secrets()
    app[SEEN] = {}
    app[SERVED] = ServedCodes()
    for name, op in vdxp.OPERATIONS.items():
        app.router.add_route(op.method, f"/vxp/{name}", operation)
