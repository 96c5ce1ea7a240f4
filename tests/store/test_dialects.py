"""The two dialects stay one store: the same named queries with the same arguments, and
migrations that leave the same tables, columns, indexes and constraints.

What each engine keeps its own way is listed here, with why; anything else that differs is a
migration or a query written for one engine and forgotten for the other.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from axis.model import PUSHABLE_STATES
from axis.store import backend
from axis.store.ops import agencies, audit, console, messages, push, tokens
from axis.store.postgres.backend import parse_url
from axis.store.protocol import Store
from tests.store.conftest import AGENCIES
from tests.support.pg import drop_schema, fresh_schema, require_postgres, schema_url

# queries only one engine's own machinery runs (its backend module, not the operations)
ONLY_SQLITE = {
    "message_insert",  # the message row alone; SQLite inserts its children one statement each
    "delivery_insert",
    "status_insert",
    "link_insert",
    "audit_head_at",  # SQLite chains events as they come, inside its one writer
    "audit_insert",
    "purged_blobs_due",  # large bodies are blob files: the sweep deletes the files
    "blob_in_use",
    "purged_blob_forget",
}
ONLY_POSTGRES = {
    "message_insert_all",  # a message with its children in one round trip
    "messages_insert_many",  # every message of a batch in one round trip
    "message_part_insert",  # large bodies live in the engine, in parts
    "message_parts_set",
    "message_part",
    "message_parts_delete",
    "purged_blobs_unused",  # a node's blob directory is only a cache to sweep
    "purged_blobs_forget_before",
    "audit_head_lock",  # one chain across nodes: the head row locked until COMMIT
    "audit_append",
    "mail_notify",  # NOTIFY wakes the other nodes
}
# tables and columns of one engine's own way of keeping something
SCHEMA_ONLY_SQLITE = {("messages", "body_file")}  # a large body's blob file
SCHEMA_ONLY_POSTGRES = {
    ("messages", "body_parts"),  # … or its parts in message_parts
    ("message_parts", None),
    ("audit_head", None),  # the chain's head, locked by each batch of every node
}


def _placeholders(sql: str) -> int:
    """How many arguments a query takes: ``?`` outside quotes, or the highest ``?N``/``$N``."""
    bare = re.sub(r"'[^']*'", "''", sql)
    numbered = [int(n) for n in re.findall(r"[?$](\d+)", bare)]
    if numbered:
        return max(numbered)
    return bare.count("?")


def test_both_dialects_name_the_same_queries_with_the_same_arguments() -> None:
    """An operation calls a query by name with one argument list on either engine."""
    lite = backend.load_queries("sqlite")
    pg = backend.load_queries("postgres")
    assert set(lite) - ONLY_SQLITE == set(pg) - ONLY_POSTGRES, (
        sorted(set(lite) - ONLY_SQLITE - set(pg)),
        sorted(set(pg) - ONLY_POSTGRES - set(lite)),
    )
    for name in set(lite) & set(pg):
        assert _placeholders(lite[name]) == _placeholders(pg[name]), name


def test_every_query_an_operation_names_exists() -> None:
    """A typo in a query name would fail at run time: every name the operations use is there."""
    names = set(backend.load_queries("sqlite")) & set(backend.load_queries("postgres"))
    used: set[str] = set()
    for module in (agencies, audit, console, messages, push, tokens):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        used |= set(re.findall(r"\.(?:one|all|value|run|many)\(\s*\(?\"([a-z_]+)\"", source))
        used |= set(re.findall(r'\("([a-z_]+)", \*(?:conditions|names)\)', source))
    # audit.first_from names its probes by table
    tables = ("audit", "messages", "deliveries")
    used |= {f"{t}_{probe}" for t in tables for probe in ("bounds", "time_from")}
    assert used and used <= names, sorted(used - names)


def test_the_pushable_states_are_spelled_from_the_model_in_queries_and_index() -> None:
    """The states a worker may push live in one place; the partial index matches them."""
    spelled = ", ".join(f"'{s}'" for s in PUSHABLE_STATES)
    for dialect in ("sqlite", "postgres"):
        assert f"state IN ({spelled})" in backend.load_queries(dialect)["push_claim"]
        migration = dict(backend.migrations(dialect))[4]
        assert f"state IN ({spelled})" in migration, dialect


def _sqlite_schema(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        columns = {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
        keys = {
            t: tuple(
                r[1]
                for r in sorted(conn.execute(f"PRAGMA table_info({t})"), key=lambda r: r[5])
                if r[5]
            )
            for t in tables
        }
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
        unique: set[tuple[str, tuple[str, ...]]] = set()
        for t in tables:
            for _, name, is_unique, origin, _partial in conn.execute(f"PRAGMA index_list({t})"):
                if is_unique and origin == "u":  # a UNIQUE constraint
                    cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
                    unique.add((t, cols))
        foreign = {
            (t, r[2], r[3], r[4])  # table, referenced table, column, referenced
            for t in tables
            for r in conn.execute(f"PRAGMA foreign_key_list({t})")
        }
    finally:
        conn.close()
    return {
        "tables": set(tables),
        "columns": columns,
        "keys": keys,
        "indexes": indexes,
        "unique": unique,
        "foreign": foreign,
    }


async def _postgres_schema(url: str) -> dict[str, Any]:
    target = parse_url(url)
    conn = await asyncpg.connect(target.dsn)
    try:
        schema = target.schema
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
                " ORDER BY table_name",
                schema,
            )
        ]
        columns: dict[str, set[str]] = {t: set() for t in tables}
        for t, c in await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = $1",
            schema,
        ):
            columns[t].add(c)
        constraints = await conn.fetch(
            "SELECT tc.table_name, tc.constraint_type, tc.constraint_name,"
            " array_agg(k.column_name ORDER BY k.ordinal_position)"
            " FROM information_schema.table_constraints tc"
            " JOIN information_schema.key_column_usage k"
            " ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema"
            " WHERE tc.table_schema = $1 GROUP BY 1, 2, 3",
            schema,
        )
        keys = dict.fromkeys(tables, ())
        unique: set[tuple[str, tuple[str, ...]]] = set()
        for t, kind, _name, cols in constraints:
            if kind == "PRIMARY KEY":
                keys[t] = tuple(cols)
            elif kind == "UNIQUE":
                unique.add((t, tuple(cols)))
        foreign = {
            (r[0], r[1], r[2], r[3])
            for r in await conn.fetch(
                "SELECT k.table_name, c.table_name, k.column_name, c.column_name"
                " FROM information_schema.referential_constraints rc"
                " JOIN information_schema.key_column_usage k"
                " ON k.constraint_name = rc.constraint_name"
                " AND k.table_schema = rc.constraint_schema"
                " JOIN information_schema.constraint_column_usage c"
                " ON c.constraint_name = rc.unique_constraint_name"
                " AND c.table_schema = rc.unique_constraint_schema"
                " WHERE rc.constraint_schema = $1",
                schema,
            )
        }
        indexes = {
            r[0]
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1"
                " AND indexname NOT IN (SELECT constraint_name FROM"
                " information_schema.table_constraints WHERE table_schema = $1)",
                schema,
            )
        }
    finally:
        await conn.close()
    return {
        "tables": set(tables),
        "columns": columns,
        "keys": keys,
        "indexes": indexes,
        "unique": unique,
        "foreign": foreign,
    }


def _without(schema: dict[str, Any], own: set[tuple[str, str | None]]) -> dict[str, Any]:
    tables = {t for t, c in own if c is None}
    out = dict(schema)
    out["tables"] = schema["tables"] - tables
    out["columns"] = {
        t: cols - {c for tt, c in own if tt == t}
        for t, cols in schema["columns"].items()
        if t not in tables
    }
    out["keys"] = {t: k for t, k in schema["keys"].items() if t not in tables}
    return out


async def test_both_dialects_migrate_to_the_same_schema(tmp_path: Path) -> None:
    """Tables, columns, primary keys, unique constraints, foreign keys and index names are
    the same on both engines, but for each engine's own way of keeping large bodies and the
    cross-node chain head."""
    from axis.config import build_settings
    from axis.store import open_store

    await require_postgres()
    lite: Store = open_store(build_settings({"data": tmp_path / "lite"}, env={}))
    await lite.open()
    await lite.initialize(AGENCIES)
    await lite.close()
    schema = fresh_schema()
    pg: Store = open_store(
        build_settings({"data": tmp_path / "pg", "store": schema_url(schema)}, env={})
    )
    await pg.open()
    try:
        await pg.initialize(AGENCIES)
        engine = await _postgres_schema(schema_url(schema))
    finally:
        await pg.close()
        await drop_schema(schema)
    embedded = _sqlite_schema(tmp_path / "lite" / "axis.sqlite3")
    a = _without(embedded, SCHEMA_ONLY_SQLITE)  # type: ignore[arg-type]
    b = _without(engine, SCHEMA_ONLY_POSTGRES)
    for part in ("tables", "columns", "keys", "indexes", "unique", "foreign"):
        assert a[part] == b[part], part
