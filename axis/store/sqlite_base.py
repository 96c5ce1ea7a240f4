"""The embedded store's machinery: one SQLite file in WAL mode, writes batched into group commits.

Every write goes through one writer thread that takes whatever requests are waiting, runs each
in its own savepoint inside one transaction, commits once (one fsync for the lot, since
``synchronous=FULL``) and then answers them all. Under load that turns thousands of fsyncs
into tens; an idle axis still commits a lone request at once. Reads run on the event loop's
own connection: WAL readers never wait for the writer, and an indexed lookup costs less than
a hop to a thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

from axis import audit, log, timeutil
from axis.audit import Event
from axis.config import Settings
from axis.errors import InvalidRequest, StoreError
from axis.model import InitReport
from axis.registry import Agency, Certificate
from axis.store.mail import MailWaiting

T = TypeVar("T")
_log = log.get("axis.store")


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("axis.store") / "sql" / "sqlite"
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Tx:
    """What one write operation sees: the connection, the commit time, the audit head."""

    def __init__(self, conn: sqlite3.Connection, *, audit: bool = True) -> None:
        self.conn = conn
        self._audit = audit
        self.at = timeutil.fmt(timeutil.now())
        self._head: tuple[int, str] | None = None
        self._rows: list[tuple[Any, ...]] = []  # events appended, inserted by ``flush``

    def event(self, event: Event) -> None:
        """Append an audit event, chained to the last, in this same transaction."""
        if not self._audit:
            return
        if self._head is None:
            row = self.conn.execute(
                "SELECT seq, hash, at FROM audit_events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            self._head = (row[0], row[1]) if row else (0, audit.GENESIS)
            # event times never go back along the chain, even if the clock steps back
            if row and row[2] > self.at:
                self.at = row[2]
        seq = self._head[0] + 1
        content = audit.canonical(seq, self.at, event)
        digest = audit.chain_hash(self._head[1], content)
        self._rows.append(
            (
                seq,
                self.at,
                event.type,
                event.actor,
                event.message_id,
                event.document_id,
                event.from_id,
                event.to_id,
                orjson.dumps(event.detail).decode(),
                digest,
            )
        )
        self._head = (seq, digest)

    def flush(self) -> None:
        """Insert the events appended so far, all in one statement (a fan-out has hundreds)."""
        if self._rows:
            self.conn.executemany(
                "INSERT INTO audit_events (seq, at, type, actor, message_id, document_id,"
                " from_id, to_id, detail, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                self._rows,
            )
            self._rows.clear()

    def mark(self) -> tuple[int, str] | None:
        return self._head

    def restore(self, head: tuple[int, str] | None) -> None:
        """Forget the events of an operation that failed, as its savepoint forgot its rows."""
        self._rows.clear()
        self._head = head


Op = Callable[[Tx], T]


class GroupWriter:
    """One connection, one transaction per batch of waiting requests, one fsync per batch.

    The statements of a batch run on the event loop's thread: they are short, and running them
    there avoids handing the GIL back and forth with a writer thread on every statement (which
    cost more than the statements). Only what may wait, taking the write lock (another process
    may hold it) and the COMMIT (the fsync), goes to a thread; requests arriving meanwhile form
    the next batch.

    Processes sharing the file (``--workers``, ``axis worker``, the CLI) queue for the write
    lock on an ``flock`` of a lock file beside the database before ``BEGIN IMMEDIATE``: the
    kernel wakes the next writer the moment the lock is released, where SQLite's own busy
    handler would have it sleep 1, 2, 5, 10… ms between tries while the disk sits idle.
    """

    def __init__(self, path: Path, max_batch: int, *, audit: bool = True) -> None:
        self._path = path
        self._audit = audit
        self._max_batch = max_batch
        self._pending: list[tuple[Callable[[Tx], Any], asyncio.Future[Any]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._stopping = False
        self.batches = 0
        self.writes = 0

    def start(self) -> None:
        self._conn = _connect(self._path)
        self._lock_fd = os.open(f"{self._path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="axis-sqlite-writer")

    async def stop(self) -> None:
        """Commit what is pending, then close."""
        if self._task is not None and self._wakeup is not None:
            # not cancelled: a COMMIT running in a thread must finish before the close
            self._stopping = True
            self._wakeup.set()
            await self._task
            self._task = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def submit(self, op: Callable[[Tx], T]) -> asyncio.Future[T]:
        if self._wakeup is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._commit(batch)

    def _begin(self) -> None:
        """In a thread: queue for the other processes' writers, then take SQLite's write lock."""
        assert self._conn is not None
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            raise

    async def _commit(self, batch: list[tuple[Callable[[Tx], Any], asyncio.Future[Any]]]) -> None:
        conn = self._conn
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        locked = False
        try:
            await asyncio.to_thread(self._begin)
            locked = True
            try:
                tx = Tx(conn, audit=self._audit)
                for op, _ in batch:
                    head = tx.mark()
                    conn.execute("SAVEPOINT op")
                    try:
                        result = op(tx)
                        tx.flush()
                        outcomes.append((True, result))
                        conn.execute("RELEASE op")
                    except Exception as exc:
                        if isinstance(exc, sqlite3.Error) and not conn.in_transaction:
                            raise  # SQLite rolled the whole batch back (disk full, I/O error)
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        tx.restore(head)
                        if isinstance(exc, sqlite3.Error):
                            exc = StoreError(f"the store could not write: {exc}")
                        outcomes.append((False, exc))
                await asyncio.to_thread(conn.execute, "COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            _log.error("store_commit_failed", error=str(exc), batch=len(batch))
            error = StoreError(f"the store could not commit: {exc}")
            outcomes = [(False, error)] * len(batch)
        except BaseException as exc:
            # cancelled mid-batch (shutdown): the transaction is rolled back, tell the callers
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreError(f"the store is closing: {exc!r}"))
            raise
        finally:
            if locked and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self.batches += 1
        self.writes += len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"s{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s"):
            raise ValueError(raw)
        value = int(raw[1:])
        if not 0 <= value < 2**63:  # a forged number the engines cannot hold
            raise ValueError(raw)
        return value
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(f"cursor: not a cursor this axis gave: {cursor!r}") from None


class SqliteBase(MailWaiting):
    """Connections, the group writer, migrations, waiters: what every operation builds on."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path = settings.sqlite_path
        self._writer: GroupWriter | None = None
        self._read: sqlite3.Connection | None = None
        self._init_mail()
        self._watch: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        self._settings.data.mkdir(parents=True, exist_ok=True)
        self._read = _connect(self._path)
        self._writer = GroupWriter(
            self._path, self._settings.group_commit_max, audit=self._settings.audit_events
        )
        self._writer.start()
        self._watch = asyncio.create_task(self._watch_other_processes())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._writer is not None:
            await self._writer.stop()
        if self._read is not None:
            self._read.close()
        self._release_waiters()

    @property
    def _r(self) -> sqlite3.Connection:
        if self._read is None:
            raise StoreError("the store is not open")
        return self._read

    def _write(self, op: Callable[[Tx], T]) -> asyncio.Future[T]:
        if self._writer is None:
            raise StoreError("the store is not open")
        return self._writer.submit(op)

    def _applied(self) -> set[int]:
        """Migration numbers applied: recorded since v5; older stores applied 1..version."""
        try:
            row = self._r.execute("SELECT value FROM meta WHERE key='migrations'").fetchone()
        except sqlite3.OperationalError:
            return set()
        if row:
            return {int(n) for n in str(row[0]).split(",") if n}
        return set(range(1, self._schema_version() + 1))

    def _schema_version(self) -> int:
        try:
            row = self._r.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0]) if row else 0

    async def initialize(self, agencies: Sequence[Agency]) -> InitReport:
        before = self._schema_version()
        applied = self._applied()
        migrations = _migrations()

        def migrate(tx: Tx) -> int:
            # every migration not yet applied, in number order (not only those above the
            # version: a migration merged late with a lower number still runs)
            done = set(applied)
            for number, sql in migrations:
                if number not in done:
                    for statement in _statements(sql):
                        tx.conn.execute(statement)
                    done.add(number)
            for key, value in (
                ("schema_version", str(max(done))),
                ("migrations", ",".join(str(n) for n in sorted(done))),
            ):
                tx.conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            added = 0
            for agency in agencies:
                exists = tx.conn.execute(
                    "SELECT 1 FROM agencies WHERE organ_id = ?", (agency.organ_id,)
                ).fetchone()
                if exists is None:
                    upsert_agency(tx, agency)
                    added += 1
            if added:
                bump_registry(tx)
                tx.event(
                    Event(
                        type="agency_changed",
                        actor="system:init",
                        detail={"loaded": added, "source": "agencies.yaml"},
                    )
                )
            return added

        added = await self._write(migrate)
        return InitReport(
            created=before == 0,
            agencies_added=added,
            schema_version=migrations[-1][0],
        )

    async def check_schema(self) -> int:
        """The schema version on disk; raises when it is older than this code expects."""
        version = self._schema_version()
        missing = sorted({n for n, _ in _migrations()} - self._applied())
        if missing:
            raise StoreError(
                f"schema version {version} on disk lacks migrations {missing}: run `axis init`"
            )
        return version

    def stats(self) -> dict[str, float]:
        writer = self._writer
        return {
            "axis_store_commits_total": float(writer.batches if writer else 0),
            "axis_store_writes_total": float(writer.writes if writer else 0),
        }

    async def healthy(self) -> dict[str, Any]:
        def probe(tx: Tx) -> None:
            tx.conn.execute("SELECT 1")

        await self._write(probe)
        return {"store": "sqlite", "path": str(self._path), "schema": self._schema_version()}

    async def _watch_other_processes(self) -> None:
        """Wake long-polls when another process sharing the file commits.

        ``PRAGMA data_version`` changes only for commits made by other connections, and our own
        writer is one; so this also catches nothing twice that matters: a woken waiter just
        re-reads its inbox.
        """
        last = None
        while True:
            await asyncio.sleep(0.2)
            if not self._waiters or self._read is None:
                continue
            version = self._read.execute("PRAGMA data_version").fetchone()[0]
            if last is not None and version != last:
                self._wake(list(self._waiters))
            last = version

    # ----------------------------------------------------------------- for tests and tools

    def raw_connection(self) -> sqlite3.Connection:
        """The read connection, for tests and diagnostics only."""
        return self._r


AGENCY_SELECT = (
    "SELECT organ_id, name, kind, parent, status, successor, endpoint, push_secret, allow_sha1,"
    " confirmed, source FROM agencies"
)
OUTBOX_SELECT = (
    "SELECT seq, id, kind, from_id, document_id, business_type, status_code, sha256,"
    " size, received_at, routes FROM messages"
)
MESSAGE_SELECT = (
    "SELECT id, kind, from_id, document_id, business_type, status_code, sha256, size,"
    " received_at, routes FROM messages"
)


def agency_from_row(row: tuple[Any, ...], certs: tuple[Certificate, ...]) -> Agency:
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
        certificates=certs,
    )


def upsert_agency(tx: Tx, agency: Agency) -> None:
    tx.conn.execute(
        "INSERT INTO agencies (organ_id, name, kind, parent, status, successor, endpoint,"
        " push_secret, allow_sha1, confirmed, source, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (organ_id) DO UPDATE SET"
        " name = excluded.name, kind = excluded.kind, parent = excluded.parent,"
        " status = excluded.status, successor = excluded.successor,"
        " endpoint = excluded.endpoint, push_secret = excluded.push_secret,"
        " allow_sha1 = excluded.allow_sha1, confirmed = excluded.confirmed,"
        " source = excluded.source, updated_at = excluded.updated_at",
        (
            agency.organ_id,
            agency.name,
            agency.kind,
            agency.parent,
            agency.status,
            agency.successor,
            agency.endpoint,
            agency.push_secret,
            int(agency.allow_sha1),
            int(agency.confirmed),
            agency.source,
            tx.at,
        ),
    )
    tx.conn.execute("DELETE FROM certificates WHERE organ_id = ?", (agency.organ_id,))
    for cert in agency.certificates:
        tx.conn.execute(
            "INSERT INTO certificates (organ_id, sha256, pem, not_before, not_after)"
            " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                agency.organ_id,
                cert.sha256,
                cert.pem,
                timeutil.fmt(cert.not_before),
                timeutil.fmt(cert.not_after),
            ),
        )


def bump_registry(tx: Tx) -> None:
    tx.conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'registry_version'"
    )


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (our files keep one ``;`` per statement end)."""
    # our migrations put no "--" or ";" inside string literals, so comments can go first
    bare = re.sub(r"--[^\n]*", "", sql)
    return [s.strip() for s in bare.split(";") if s.strip()]
