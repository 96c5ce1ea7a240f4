"""``python -m bench.console``: how long each console page takes a server on a big store.

1. **A big store, built quickly.** A data directory is initialised as ``axis init`` does it
   (migrations, the shipped agencies), then filled by writing rows directly, in big
   transactions (SQLite: ``executemany``; PostgreSQL: ``COPY``): by default 1,000,000
   messages over 150 days (documents and the statuses their recipients send back, office
   hours busier than nights and weekends), their deliveries in realistic states (most
   acknowledged; some queued, fetched, failed, dead; one agency's pushes failing), the
   statuses and links, and 10,000,000 audit events with a correct hash chain and signed
   checkpoints, the last a few thousand events before the head. The chain verifies.
2. **A real server** (``python -m axis serve`` in its own process, push worker off), signed
   in as an administrator through the sign-in form.
3. **Each page** is fetched once to warm up, then ``--rounds`` times; the figure is the
   server's own time (the ``Server-Timing`` header each console answer carries), median, 90th
   percentile and worst, against the 200 ms target. The whole-chain verification (a page
   that does what it says on demand) is timed once on its own.

Figures are printed with the machine they ran on (``bench.machine``); ``--json FILE`` keeps
them. ``--quick`` builds a small store (a smoke run). ``--postgres [URL]`` runs on
PostgreSQL in a fresh schema (dropped afterwards unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import math
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from axis import audit, bootstrap, timeutil, tokens
from axis.config import Settings, build_settings
from axis.lifecycle import VIETNAM
from axis.registry import Agency, Certificate
from axis.store import open_store
from axis.timeutil import now
from bench import machine, server
from tests.support import pki

CHUNK = 20_000  # messages per transaction
TARGET_MS = 200.0


def _log(message: str) -> None:
    print(f"bench.console: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- where rows go


class Sink:
    """Rows straight into the tables, in big transactions."""

    async def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    async def commit(self) -> None: ...

    async def close(self) -> None: ...


class SqliteSink(Sink):
    def __init__(self, path: Path) -> None:
        import sqlite3

        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous=OFF")  # building only; the server syncs fully
        self.conn.execute("PRAGMA cache_size=-400000")
        self.conn.execute("BEGIN")

    async def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if rows:
            marks = ",".join("?" * len(columns))
            self.conn.executemany(
                f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})", rows
            )

    async def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("BEGIN")

    async def close(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()


class PgSink(Sink):
    def __init__(self, conn: Any, schema: str | None) -> None:
        self.conn = conn
        self.schema = schema

    @classmethod
    async def open(cls, url: str) -> PgSink:
        import asyncpg

        from axis.store.postgres.backend import parse_url

        target = parse_url(url)
        conn = await asyncpg.connect(target.dsn)
        if target.schema:
            await conn.execute(f'SET search_path TO "{target.schema}"')
        await conn.execute("SET synchronous_commit TO off")
        return cls(conn, target.schema)

    async def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await self.conn.copy_records_to_table(
                table, records=rows, columns=list(columns), schema_name=self.schema
            )

    async def close(self) -> None:
        await self.conn.close()


# --------------------------------------------------------------------------- the data


@dataclass
class Facts:
    """What the pages are asked about: real codes, ids and days of the built store."""

    messages: int = 0
    deliveries: int = 0
    events: int = 0
    checkpoints: int = 0
    head: tuple[int, str, str] = (0, audit.GENESIS, "")
    document_id: str = ""
    message_id: str = ""
    busy_sender: str = ""
    busy_recipient: str = ""
    failing: str = ""
    day: str = ""  # a day a month back, yyyy-mm-dd
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


SENDERS = ["000.00.00.G22", "000.00.00.G12", "000.00.00.G09", "000.00.00.H26", "000.00.00.H29"]
PUSHED = ["000.00.00.H41", "000.00.00.G22", "000.00.00.H29"]  # agencies with an endpoint
FAILING = "000.00.00.H41"  # its endpoint has been failing since the day before


def _hours(start: datetime, days: int) -> list[float]:
    """Weights per hour: office hours (08–17 Vietnam time, Monday–Friday) are busy."""
    weights = []
    for h in range(days * 24):
        local = (start + timedelta(hours=h)).astimezone(VIETNAM)
        busy = 8 <= local.hour < 17
        weekday = local.weekday() < 5
        weights.append((1.0 if busy else 0.08) * (1.0 if weekday else 0.25))
    return weights


def message_times(count: int, days: int, end: datetime) -> Iterator[str]:
    """``count`` times, non-decreasing, spread by the office-hours profile over ``days``."""
    start = (end - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    weights = _hours(start, days)
    total = sum(weights)
    made = 0
    carry = 0.0
    for h, weight in enumerate(weights):
        carry += count * weight / total
        n = int(carry) if h < len(weights) - 1 else count - made
        carry -= n
        base = start + timedelta(hours=h)
        for k in range(n):
            yield timeutil.fmt(base + timedelta(seconds=3600 * (k + 0.5) / n))
        made += n


class ChainWriter:
    """Audit events, hashed in order, with a signed checkpoint (and its ``checkpoint``
    event) at each of ``checkpoint_at``."""

    def __init__(self, key: Any, checkpoint_at: set[int]) -> None:
        self.seq = 0
        self.hash = audit.GENESIS
        self.at = ""
        self.rows: list[tuple[Any, ...]] = []
        self.checkpoints: list[tuple[Any, ...]] = []
        self.key = key
        self.checkpoint_at = checkpoint_at

    def add(self, event: audit.Event, at: str) -> None:
        self.at = max(self.at, at)
        self.seq += 1
        self.hash = audit.chain_hash(self.hash, audit.canonical(self.seq, self.at, event))
        self.rows.append(
            (
                self.seq,
                self.at,
                event.type,
                event.actor,
                event.message_id,
                event.document_id,
                event.from_id,
                event.to_id,
                orjson.dumps(event.detail).decode(),
                self.hash,
            )
        )
        if self.seq in self.checkpoint_at:
            seq, head, when = self.seq, self.hash, self.at
            xml = self.key.sign_enveloped(audit.checkpoint_element(seq, head, when, issuer="axis"))
            checkpoint = audit.Checkpoint(seq, head, when, xml)
            self.checkpoints.append((seq, head, when, xml))
            self.add(checkpoint.event("axis"), when)


EVENT_COLUMNS = (
    "seq",
    "at",
    "type",
    "actor",
    "message_id",
    "document_id",
    "from_id",
    "to_id",
    "detail",
    "hash",
)


async def build(settings: Settings, messages: int, events: int, days: int, body: int) -> Facts:
    """Fill a freshly initialised store (see the module note)."""
    started = time.monotonic()
    rnd = random.Random(13)
    store = open_store(settings)
    await store.open()
    try:
        registry = await store.registry()
        active = sorted(a.organ_id for a in registry.agencies.values() if a.status == "active")
        extra: list[Agency] = []
        for parent in active[:20]:  # level-2 units under twenty level-1 agencies
            for n in range(1, 11):
                code = f"000.00.{n:02d}.{parent[-3:]}"
                extra.append(Agency(code, f"Đơn vị {n} thuộc {parent}", "unit", parent=parent))
        await store.save_agencies(extra, actor="bench")
        soon = pki.identity(
            "rsa2048", common_name=f"{FAILING} signer", not_after=now() + timedelta(days=20)
        )
        for organ_id in PUSHED:
            agency = registry.get(organ_id)
            assert agency is not None
            cert = Certificate.from_pem(soon.cert_pem)
            await store.save_agency(
                replace(
                    agency,
                    endpoint=f"https://{organ_id.lower()}.example/axis",
                    certificates=(cert,) if organ_id == FAILING else agency.certificates,
                ),
                actor="bench",
            )
        key = bootstrap.load_key(settings)
        head_before = await store.audit_head()
    finally:
        await store.close()
    recipients = active + [a.organ_id for a in extra]
    first_seq = head_before[0] if head_before else 0
    if settings.uses_postgres:
        sink: Sink = await PgSink.open(settings.store)
        rows = await sink.conn.fetch(  # type: ignore[attr-defined]
            "SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"
            " FROM audit_events ORDER BY seq"
        )
    else:
        sink = SqliteSink(settings.sqlite_path)
        rows = sink.conn.execute(  # type: ignore[attr-defined]
            "SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"
            " FROM audit_events ORDER BY seq"
        ).fetchall()
    marks = {first_seq + round(events * k / 32) for k in range(1, 32)}
    marks.add(first_seq + events - 3000)
    chain = ChainWriter(key, marks)
    moment = now()
    # the events of init and of the registry changes above, as if made when the period began:
    # event times never go back along the chain, and the messages' are in the past
    began = timeutil.fmt(moment - timedelta(days=days + 1))
    if isinstance(sink, PgSink):
        await sink.conn.execute("DELETE FROM audit_events")
    else:
        sink.conn.execute("DELETE FROM audit_events")  # type: ignore[attr-defined]
    for row in rows:
        chain.add(audit.StoredEvent(*row).event(), began)
    facts = Facts(busy_sender=SENDERS[0], failing=FAILING)
    recent = timeutil.fmt(moment - timedelta(days=3))
    day_cut = timeutil.fmt(moment - timedelta(days=1))
    month = (moment - timedelta(days=30)).astimezone(VIETNAM).date().isoformat()
    facts.day = month
    blob = secrets.token_bytes(body)
    receipts: deque[tuple[str, str, str, str]] = deque()  # (doc message, doc_from, doc, party)
    counts: dict[str, int] = {}
    msg_rows: list[tuple[Any, ...]] = []
    dlv_rows: list[tuple[Any, ...]] = []
    st_rows: list[tuple[Any, ...]] = []
    link_rows: list[tuple[Any, ...]] = []
    delivery_n = 0

    async def flush() -> None:
        await sink.insert(
            "messages",
            (
                "id",
                "kind",
                "from_id",
                "document_id",
                "business_type",
                "status_code",
                "sha256",
                "size",
                "received_at",
                "body",
                "routes",
                "signer_sha256",
            ),
            msg_rows,
        )
        await sink.insert(
            "deliveries",
            (
                "id",
                "message_id",
                "delivered_to",
                "kind",
                "state",
                "open",
                "attempts",
                "last_error",
                "updated_at",
                "next_attempt_at",
                "push_since",
                "push_failures",
            ),
            dlv_rows,
        )
        await sink.insert(
            "statuses",
            ("message_id", "doc_from", "document_id", "party", "code", "at", "received_at"),
            st_rows,
        )
        await sink.insert("links", ("from_message", "to_message", "relation"), link_rows)
        await sink.insert("audit_events", EVENT_COLUMNS, chain.rows)
        await sink.insert("audit_checkpoints", ("seq", "hash", "at", "xml"), chain.checkpoints)
        await sink.commit()
        for rows_ in (msg_rows, dlv_rows, st_rows, link_rows, chain.rows, chain.checkpoints):
            rows_.clear()

    pg = settings.uses_postgres
    times = message_times(messages, days, moment - timedelta(minutes=5))
    for i, at in enumerate(times):
        mid = f"msg_bench{i:010d}"
        is_doc = not receipts or rnd.random() < 0.52
        if is_doc:
            sender = SENDERS[i % 7 % len(SENDERS)] if rnd.random() < 0.6 else rnd.choice(active)
            n_to = 1 if rnd.random() < 0.75 else rnd.randint(2, 4)
            to = tuple(
                dict.fromkeys(
                    [FAILING if rnd.random() < 0.15 else rnd.choice(recipients)]
                    + [rnd.choice(recipients) for _ in range(n_to - 1)]
                )
            )
            to = tuple(t for t in to if t != sender) or ("000.00.00.G12",)
            day = at[:10].replace("-", "/")
            doc = f"{sender},{day},{i}/BENCH"
            kind, code, btype = "edoc", None, 0
            for party in to:
                if rnd.random() < 0.82:
                    receipts.append((mid, sender, doc, party))
            facts.document_id = doc
            facts.message_id = mid
        else:
            doc_mid, doc_from, doc, party = receipts.popleft()
            sender, to = party, (doc_from,)
            kind, btype = "status", None
            code = rnd.choice(("01", "01", "03", "03", "04", "05", "06"))
            st_rows.append((mid, doc_from, doc, party, code, at, at))
            link_rows.append((mid, doc_mid, "status_of"))
        sha = hashlib.sha256(mid.encode()).hexdigest()
        routes = orjson.dumps([[t, t] for t in to]).decode()
        msg_rows.append(
            (
                mid,
                kind,
                sender,
                doc,
                btype,
                code,
                sha,
                body,
                at,
                blob,
                routes,
                sha if is_doc else None,
            )
        )
        detail = {"kind": kind, "sha256": sha, "size": body, "business_type": btype}
        detail["status_code"] = code
        chain.add(
            audit.Event("message_received", f"agency:{sender}", mid, doc, sender, None, detail), at
        )
        for party in to:
            delivery_n += 1
            did = f"dlv_bench{delivery_n:011d}"
            old = at < recent
            draw = rnd.random()
            if party == FAILING and at >= day_cut and kind == "edoc":
                state = "retrying"
            elif old:
                state = (
                    "acked"
                    if draw < 0.975
                    else "failed"
                    if draw < 0.98
                    else "dead"
                    if draw < 0.982
                    else "fetched"
                    if draw < 0.985
                    else "queued"
                )
            else:
                state = "queued" if draw < 0.4 else "fetched" if draw < 0.5 else "acked"
            counts[state] = counts.get(state, 0) + 1
            opened = state not in ("acked", "failed")
            error = None
            attempts = 0
            since = None
            if state in ("retrying", "dead"):
                error = "HTTP 503: Service Unavailable"
                attempts = 4
                since = at
            elif state == "failed":
                error = "unreadable attachment"
            due = at if state == "retrying" else ""
            dlv_rows.append(
                (
                    did,
                    mid,
                    party,
                    kind,
                    state,
                    opened if pg else int(opened),
                    attempts,
                    error,
                    at,
                    due,
                    since,
                    attempts,
                )
            )
            who = (mid, doc, sender, party)
            chain.add(audit.Event("delivery_queued", "axis", *who, {"delivery_id": did}), at)
            if kind == "status":
                chain.add(audit.Event("status_relayed", "axis", *who, {"status_code": code}), at)
            if state in ("fetched", "acked", "failed"):
                actor = f"agency:{party}"
                chain.add(audit.Event("delivery_fetched", actor, *who, {"delivery_id": did}), at)
            if state in ("acked", "failed"):
                type_ = "delivery_acked" if state == "acked" else "delivery_failed"
                reason = {"delivery_id": did, "reason": error}
                chain.add(audit.Event(type_, f"agency:{party}", *who, reason), at)
            if state in ("retrying", "dead"):
                for attempt in range(1, 5):
                    failed = {"delivery_id": did, "attempt": attempt, "status": 503, "error": error}
                    chain.add(audit.Event("push_attempt_failed", "axis:push", *who, failed), at)
            if state == "dead":
                dead = {"delivery_id": did, "attempts": 4, "reason": "max age", "error": error}
                chain.add(audit.Event("delivery_dead", "axis:push", *who, dead), at)
        target = first_seq + round(events * (i + 1) / messages) - 3  # room for the last ones
        while chain.seq < target:  # the rest of a busy axis's trail: pushes retried
            party = to[0]
            failed = {"delivery_id": f"dlv_bench{delivery_n:011d}", "attempt": 1, "status": 502}
            chain.add(
                audit.Event("push_attempt_failed", "axis:push", mid, doc, sender, party, failed),
                at,
            )
        if i % 50_000 == 7:  # now and then an administrator's act
            chain.add(audit.Event("body_downloaded", "admin:tok_bench", mid, doc, sender), at)
        if len(msg_rows) >= CHUNK:
            await flush()
            if (i + 1) % 200_000 < CHUNK:
                _log(
                    f"{i + 1:,} messages, {chain.seq:,} events ({time.monotonic() - started:.0f} s)"
                )
    await flush()
    if pg:
        await sink.conn.execute(  # type: ignore[attr-defined]
            "UPDATE audit_head SET seq = $1, hash = $2, at = $3 WHERE id = 1",
            chain.seq,
            chain.hash,
            chain.at,
        )
    await sink.close()
    facts.messages = messages
    facts.deliveries = delivery_n
    facts.events = chain.seq
    facts.checkpoints = len(marks)
    facts.head = (chain.seq, chain.hash, chain.at)
    facts.counts = counts
    facts.busy_recipient = FAILING
    if pg:
        await _analyze(settings.store)
    facts.seconds = time.monotonic() - started
    return facts


async def _analyze(url: str) -> None:
    """What autovacuum does to a table that grew: statistics and the visibility map."""
    import asyncpg

    from axis.store.postgres.backend import parse_url

    target = parse_url(url)
    conn = await asyncpg.connect(target.dsn)
    try:
        if target.schema:
            await conn.execute(f'SET search_path TO "{target.schema}"')
        for table in ("messages", "deliveries", "statuses", "links", "audit_events"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


# --------------------------------------------------------------------------- the pages


class Browser:
    """A keep-alive connection with the console's cookies."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(server.HOST, port, timeout=600)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, bytes, Any]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return resp.status, data, resp.headers

    def sign_in(self, token: str) -> None:
        status, page, _ = self.request("GET", "/console/signin")
        found = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert status == 200, page[:300]
        assert found, page[:300]
        form = {"csrf": found.group(1).decode(), "token": token, "next": "/console/"}
        status, page, _ = self.request("POST", "/console/signin", form)
        assert status == 303, page[:500]


def pages(f: Facts) -> list[tuple[str, str]]:
    q = urllib.parse.quote
    return [
        ("overview", "/console/"),
        ("messages: latest", "/console/messages"),
        ("messages: by DocumentId", f"/console/messages?q={q(f.document_id)}"),
        ("messages: by message id", f"/console/messages?q={f.message_id}"),
        ("messages: by sender code", f"/console/messages?sender={f.busy_sender}"),
        ("messages: by sender name, no diacritics", "/console/messages?sender=van+phong+chinh+phu"),
        ("messages: by recipient", f"/console/messages?recipient={f.busy_recipient}"),
        ("messages: one day a month ago", f"/console/messages?from={f.day}&to={f.day}"),
        (
            "messages: sender + status kind + day",
            f"/console/messages?sender={f.busy_sender}&kind=status&from={f.day}&to={f.day}",
        ),
        ("messages: state dead", "/console/messages?state=dead"),
        ("messages: state failed", "/console/messages?state=failed"),
        ("messages: receipt overdue", "/console/messages?state=overdue"),
        ("messages: kind status", "/console/messages?kind=status"),
        ("message page", f"/console/messages/{f.message_id}"),
        ("deliveries: dead", "/console/deliveries?state=dead"),
        ("deliveries: retrying", "/console/deliveries?state=retrying"),
        ("deliveries: failed", "/console/deliveries?state=failed"),
        (
            "deliveries: dead to one agency",
            f"/console/deliveries?state=dead&organ={f.busy_recipient}",
        ),
        ("agencies: level 1", "/console/agencies"),
        ("agencies: search ha noi", "/console/agencies?q=ha+noi"),
        ("agency page", f"/console/agencies/{f.failing}"),
        ("audit: latest", "/console/audit"),
        ("audit: type (rare)", "/console/audit?type=body_downloaded"),
        ("audit: agency", f"/console/audit?organ={f.busy_recipient}"),
        ("audit: message", f"/console/audit?message_id={f.message_id}"),
        ("audit: DocumentId", f"/console/audit?document_id={q(f.document_id)}"),
        ("audit: one day a month ago", f"/console/audit?from={f.day}&to={f.day}"),
        ("audit: checkpoints", "/console/audit/checkpoints"),
    ]


@dataclass
class Figure:
    name: str
    path: str
    server_ms: list[float]
    client_ms: list[float]
    bytes: int

    def row(self) -> dict[str, Any]:
        ordered = sorted(self.server_ms)
        return {
            "page": self.name,
            "path": self.path,
            "median_ms": round(statistics.median(ordered), 1),
            "p90_ms": round(ordered[max(0, math.ceil(len(ordered) * 0.9) - 1)], 1),
            "max_ms": round(ordered[-1], 1),
            "client_median_ms": round(statistics.median(self.client_ms), 1),
            "bytes": self.bytes,
        }


def measure(browser: Browser, name: str, path: str, rounds: int) -> Figure:
    server_ms: list[float] = []
    client_ms: list[float] = []
    size = 0
    for n in range(rounds + 1):
        started = time.perf_counter()
        status, body, headers = browser.request("GET", path)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise RuntimeError(f"{path}: {status} {body[:500]!r}")
        timing = headers.get("Server-Timing", "")
        found = re.search(r"dur=([\d.]+)", timing)
        if n == 0:
            continue  # warm-up: templates compiled, caches filled
        server_ms.append(float(found.group(1)) if found else elapsed)
        client_ms.append(elapsed)
        size = len(body)
    return Figure(name, path, server_ms, client_ms, size)


# --------------------------------------------------------------------------- the run


async def _prepare(settings: Settings, args: argparse.Namespace) -> tuple[Facts, str]:
    saved = settings.data.parent / "facts.json"
    if args.reuse and saved.exists():
        facts = Facts(**orjson.loads(saved.read_bytes()))
        facts.head = tuple(facts.head)  # type: ignore[assignment]
    else:
        await bootstrap.initialize(settings)
        facts = await build(settings, args.messages, args.events, args.days, args.body)
        saved.write_bytes(orjson.dumps(facts.__dict__))
    store = open_store(settings)
    await store.open()
    try:
        token_id, token, token_hash = tokens.generate()
        await store.issue_token(token_id, token_hash, "admin", None, actor="bench")
    finally:
        await store.close()
    return facts, token


def report(facts: Facts, figures: list[Figure], verify: dict[str, Any], env: dict[str, Any]) -> str:
    lines = [
        "console pages on a big store (server time from Server-Timing, ms)",
        f"machine: {env['cpu_model']}, {env['cores']} cores, {env['ram_bytes'] / 2**30:.0f} GiB,"
        f" Python {env['python']}, {env['data_fs']}, {env['date']}",
        f"store: {env['store']}; {facts.messages:,} messages, {facts.deliveries:,} deliveries,"
        f" {facts.events:,} audit events, {facts.checkpoints} checkpoints"
        f" (built in {facts.seconds:.0f} s)",
        "",
        f"{'page':42} {'median':>8} {'p90':>8} {'max':>8} {'client':>8} {'KiB':>5}"
        f"  ≤ {TARGET_MS:.0f} ms",
    ]
    for figure in figures:
        r = figure.row()
        ok = "yes" if r["p90_ms"] <= TARGET_MS else "NO"
        lines.append(
            f"{r['page']:42} {r['median_ms']:8.1f} {r['p90_ms']:8.1f} {r['max_ms']:8.1f}"
            f" {r['client_median_ms']:8.1f} {r['bytes'] / 1024:5.0f}  {ok}"
        )
    lines += [
        "",
        f"whole-chain verification on demand: {verify['seconds']:.1f} s for"
        f" {verify['events']:,} events ({verify['result']})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--body", type=int, default=2048, help="bytes of each message body")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="20,000 messages, 200,000 events")
    parser.add_argument("--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-verify", action="store_true", help="skip the whole-chain check")
    parser.add_argument("--data", type=Path, help="build in this (new) directory")
    parser.add_argument("--keep", action="store_true", help="keep the data (and schema)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --data (and --keep): measure a store built before",
    )
    parser.add_argument("--schema", help="with --postgres --reuse: the schema built before")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.events = 20_000, 200_000
    root = args.data or Path(tempfile.mkdtemp(prefix="axis-bench-console-"))
    data = root / "var"
    schema = None
    flags: dict[str, Any] = {"data": data}
    if args.postgres:
        schema = args.schema or f"axis_bench_{secrets.token_hex(4)}"
        base = args.postgres
        flags["store"] = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    settings = build_settings(flags, env={})
    proc = None
    try:
        _log(f"building {args.messages:,} messages and {args.events:,} events in {data}")
        if schema:
            _log(f"in schema {schema}")
        facts, token = asyncio.run(_prepare(settings, args))
        _log(f"built in {facts.seconds:.0f} s; starting the server")
        env = {"AXIS_PUSH_ENABLED": "false", "AXIS_AUDIT_CHECKPOINT_INTERVAL": "86400"}
        if settings.store:
            env["AXIS_STORE"] = settings.store
        proc = server.start(data, 1, root / "server.log", env)
        browser = Browser(proc.port)
        browser.sign_in(token)
        figures = []
        for name, path in pages(facts):
            figures.append(measure(browser, name, path, args.rounds))
            _log(f"{name}: {figures[-1].row()['median_ms']} ms")
        verify: dict[str, Any] = {"seconds": 0.0, "events": facts.events, "result": "skipped"}
        if not args.no_verify:
            started = time.perf_counter()
            status, body, _ = browser.request("GET", "/console/audit/verify")
            verify["seconds"] = time.perf_counter() - started
            intact = "Chuỗi nhật ký toàn vẹn" in body.decode()
            verify["result"] = "intact" if status == 200 and intact else f"{status}: not intact"
        described = {**machine.describe(root), "store": "PostgreSQL" if schema else "SQLite"}
        print(report(facts, figures, verify, described))
        if args.json:
            args.json.write_bytes(
                orjson.dumps(
                    {
                        "machine": described,
                        "store": {
                            "messages": facts.messages,
                            "deliveries": facts.deliveries,
                            "events": facts.events,
                            "build_seconds": facts.seconds,
                            "states": facts.counts,
                        },
                        "pages": [f.row() for f in figures],
                        "verify": verify,
                    },
                    option=orjson.OPT_INDENT_2,
                )
            )
    finally:
        if proc is not None:
            proc.stop()
        if not args.keep:
            if schema:
                asyncio.run(_drop(args.postgres, schema))
            if args.data is None:
                shutil.rmtree(root, ignore_errors=True)
    return 0


async def _drop(base: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
