"""What a store backend provides to the operations written once in ``axis.store.ops``.

An operation is an async function over a ``Tx`` (a write, group-committed) or a ``Reader``
(reads on the serving connection, or a consistent snapshot for long reads). It names its
queries; each backend gives their SQL (``axis/store/sql/<dialect>/*.sql``, loaded once), its
transaction and group-commit mechanics, and only the few primitives where the engines truly
differ: inserting a message with its children (bulk), where large bodies live, waking waiters
in other processes or nodes.

Queries take ``?`` placeholders in both dialects and the same arguments in the same order, so
an operation calls them alike on either engine. A Python list argument stands for a list
parameter (``= ANY(?)`` on PostgreSQL, ``IN (SELECT value FROM json_each(?))`` on SQLite).
A query may have one ``/*and*/`` marker where optional conditions (fragments, themselves named
queries) are joined in with ``AND``: ``tx.all(("outbox_page", "outbox_since"), …)``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

from axis.audit import Event
from axis.config import Settings
from axis.errors import StoreError
from axis.model import CLOSED_STATES, PUSHABLE_STATES, NewMessage
from axis.store.mail import MailWaiting

T = TypeVar("T")
Row = Sequence[Any]
QueryKey = str | tuple[str, ...]
"""A query's name, or ``(name, fragment, fragment, …)`` for one with optional conditions."""

# the delivery states spelled into queries where the partial indexes need them literally
_MACROS = {
    ":PUSHABLE": ", ".join(f"'{s}'" for s in PUSHABLE_STATES),
    ":CLOSED": ", ".join(f"'{s}'" for s in sorted(CLOSED_STATES)),
}
_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.M)
_AND = "/*and*/"


def sql_folder(dialect: str) -> Path:
    """Where a dialect's named queries and (under ``migrations/``) its migrations live."""
    return Path(str(resources.files("axis.store") / "sql" / dialect))


def load_queries(dialect: str) -> dict[str, str]:
    """Every named query of a dialect: ``-- name: x`` starts one, up to the next name.

    Comment lines are dropped and whitespace folded; the macros (``:PUSHABLE``) are spelled
    out from ``axis.model``, so a state list lives in one place.
    """
    out: dict[str, str] = {}
    for path in sorted(sql_folder(dialect).glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        parts = _NAME.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in out:
                raise ValueError(f"{path.name}: query {name} is defined twice")
            lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
            sql = " ".join(" ".join(lines).split()).rstrip(";").strip()
            for macro, value in _MACROS.items():
                sql = sql.replace(macro, value)
            out[name] = sql
    return out


def migrations(dialect: str) -> list[tuple[int, str]]:
    """``(number, sql)`` of every migration file of a dialect, by number."""
    out = []
    for path in (sql_folder(dialect) / "migrations").glob("*.sql"):
        out.append((int(path.name.split("_", 1)[0]), path.read_text(encoding="utf-8")))
    return sorted(out)


class Queries:
    """A dialect's queries by name, with composed ones made once and kept."""

    def __init__(self, dialect: str, convert: Callable[[str], str] = str) -> None:
        self._named = load_queries(dialect)
        self._convert = convert
        self._made: dict[QueryKey, str] = {}

    @property
    def names(self) -> set[str]:
        return set(self._named)

    def __getitem__(self, key: QueryKey) -> str:
        sql = self._made.get(key)
        if sql is None:
            sql = self._made[key] = self._convert(self._compose(key))
        return sql

    def _compose(self, key: QueryKey) -> str:
        if isinstance(key, str):
            return self._named[key]
        base, *fragments = key
        text = self._named[base]
        if _AND not in text:
            raise KeyError(f"query {base} takes no conditions")
        extra = "".join(f" AND {self._named[f]}" for f in fragments)
        return text.replace(_AND, extra)


class Reader(Protocol):
    """Reads by query name; rows are tuples (or tuple-like records) in the query's order."""

    async def one(self, query: QueryKey, *args: Any) -> Row | None: ...

    async def all(self, query: QueryKey, *args: Any) -> list[Row]: ...

    async def value(self, query: QueryKey, *args: Any) -> Any:
        """The first column of the first row; None when there is none."""


class Tx(Reader, Protocol):
    """One write operation's view of its transaction."""

    at: str  # the batch's time, RFC 3339 UTC: every row and event of the batch carries it

    async def run(self, query: QueryKey, *args: Any) -> int:
        """Execute; the number of rows changed."""

    async def many(self, query: QueryKey, rows: Sequence[Sequence[Any]]) -> None:
        """Execute once per row of arguments."""

    def event(self, event: Event) -> None:
        """Append an audit event, chained to the last, in this same transaction."""

    def notify(self, organ_ids: Iterable[str]) -> None:
        """These agencies got mail: wake their long-polls and push workers after COMMIT."""


class EventSwitch(ABC):
    """The audit switch of a backend's transaction: on in service, off only in benchmarks
    that measure what the log costs (``AXIS_AUDIT_EVENTS=false``)."""

    def __init__(self, *, audit: bool) -> None:
        self._audit = audit

    def event(self, event: Event) -> None:
        if self._audit:
            self._append(event)

    @abstractmethod
    def _append(self, event: Event) -> None: ...


Op = Callable[[Tx], Awaitable[T]]


class Counted(Protocol):
    batches: int  # group commits (each one fsync, or one WAL flush)
    writes: int  # the write requests they carried


class BackendBase(MailWaiting):
    """What both engines keep alike: the serving reader, the writer's counters, waiters."""

    _reader: Reader | None = None
    writer: Counted | None = None

    @property
    def read(self) -> Reader:
        if self._reader is None:
            raise StoreError("the store is not open")
        return self._reader

    def stats(self) -> dict[str, float]:
        writer = self.writer
        return {
            "axis_store_commits_total": float(writer.batches if writer else 0),
            "axis_store_writes_total": float(writer.writes if writer else 0),
        }


class Backend(Protocol):
    """An engine under the operations: connections, group commit, SQL, and the primitives
    that differ between engines."""

    dialect: str
    settings: Settings
    mail_listeners: list[Callable[[Iterable[str]], None]]

    @property
    def read(self) -> Reader:
        """Reads for serving requests (short, indexed)."""

    def long_reads(self) -> AbstractAsyncContextManager[Reader]:
        """A reader on one consistent snapshot, off the serving connection (scans, exports,
        verification), so requests never wait behind it."""

    def write(self, op: Op[T], *, message: NewMessage | None = None) -> Awaitable[T]:
        """Run ``op`` in the next group commit; resolves once it is durable.

        ``message``: the op inserts this message (``insert_message``); a backend may insert
        the messages of one batch together.
        """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def prepare(self) -> None:
        """Before the first migration: whatever must exist outside a transaction."""

    async def apply_migration(self, tx: Tx, sql: str) -> None: ...

    async def insert_message(self, tx: Tx, message: NewMessage) -> bool:
        """Insert the message with its deliveries, statuses, links and body; False (nothing
        written) when a unique index refuses it (the same bytes, or a DocumentId reused)."""

    async def body_path(self, message_id: str, sha256: str, ref: Any) -> Path | None:
        """A local file holding a large body (``ref``: the row's ``body_ref``); None if none."""

    async def drop_body(self, tx: Tx, message_id: str, sha256: str, ref: Any) -> None:
        """Retention: the large body of a purged message goes (its row is updated already)."""

    async def sweep_bodies(self, grace: float) -> int:
        """Delete files of purged large bodies no kept message uses; how many went."""

    async def wait_for_mail(self, organ_id: str, timeout: float) -> None:  # noqa: ASYNC109
        """Return when mail may have arrived for ``organ_id`` or after ``timeout`` seconds."""

    def stats(self) -> dict[str, float]: ...

    def describe(self) -> dict[str, Any]:
        """What ``/readyz`` shows of the store (engine, where, no secrets)."""
