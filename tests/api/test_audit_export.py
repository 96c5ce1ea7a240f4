"""An export of any size streams in constant memory: 100,000 events, memory bounded."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import orjson

from axis import audit, tokens
from axis.audit import Event
from axis.config import Settings
from axis.store.protocol import SCAN_WINDOW
from tests.support.harness import AxisHarness
from tests.support.rawsql import settings_sql

EVENTS = 100_000
PAD = "x" * 400  # ~700 bytes a line: each export is 65 to 75 MB
# what the process (server and client alike) may allocate on top while a whole export streams:
# holding the rows, or the bytes, of all 100,000 events would take several times more
BOUND = 16 * 1024 * 1024


def append_events(settings: Settings, count: int) -> None:
    """Append ``count`` correctly chained events straight into the store's tables, quickly."""
    conn = settings_sql(settings)
    try:
        conn.execute("BEGIN")
        seq, prev = conn.execute(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        at = "2026-11-23T10:00:00.000000+00:00"

        def rows() -> Iterator[tuple[Any, ...]]:
            nonlocal prev
            for n in range(seq + 1, seq + count + 1):
                event = Event(
                    "delivery_queued",
                    "axis",
                    message_id=f"msg_{n:026d}",
                    document_id=f"000.00.00.G22,2026/11/23,{n}/TEST",
                    from_id="000.00.00.G22",
                    to_id=f"000.00.00.H{n % 60:02d}",
                    detail={"delivery_id": f"dlv_{n}", "pad": PAD},
                )
                prev = audit.chain_hash(prev, audit.canonical(n, at, event))
                yield (
                    n,
                    at,
                    event.type,
                    event.actor,
                    event.message_id,
                    event.document_id,
                    event.from_id,
                    event.to_id,
                    orjson.dumps(event.detail).decode(),
                    prev,
                )

        conn.executemany("INSERT INTO audit_events VALUES (?,?,?,?,?,?,?,?,?,?)", list(rows()))
        if settings.uses_postgres:  # the chain head the next batch appends after
            conn.execute("UPDATE audit_head SET seq = ?, hash = ?, at = ?", (seq + count, prev, at))
    finally:
        conn.execute("COMMIT")


async def test_an_export_of_100000_events_streams_in_bounded_memory(axis: AxisHarness) -> None:
    """Exporting 100,000 events (~70 MB) in either format allocates a bounded amount."""
    token_id, token, token_hash = tokens.generate()
    await axis.store.issue_token(token_id, token_hash, "auditor", None, actor="test")
    who = {"Authorization": f"Bearer {token}"}
    append_events(axis.settings, EVENTS)
    head = await axis.store.audit_head()
    assert head is not None
    for fmt in ("jsonl", "csv"):
        size = lines = 0
        tail = b""
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            async with axis.session.get(
                f"{axis.url}/v1/audit/export?format={fmt}", headers=who
            ) as resp:
                assert resp.status == 200
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    tail = (tail + chunk)[-4096:]
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert lines == head[0] + (fmt == "csv")  # every event, and the CSV header
        last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        if fmt == "jsonl":
            assert orjson.loads(last)["seq"] == head[0]
        else:
            assert last.startswith(f"{head[0]},".encode())
        assert peak < BOUND, f"{fmt}: {peak / 1e6:.1f} MB allocated while streaming"
    status, verdict = await axis.get(who, "/v1/audit/verify")
    assert status == 200 and verdict["ok"] is True and verdict["events"] == head[0]


async def test_a_sparse_filter_pages_through_a_large_log_in_bounded_windows(
    axis: AxisHarness,
) -> None:
    """A filter that matches little scans a bounded window per page: pages may come back short
    or empty, with a cursor, and following the cursors finds every match."""
    append_events(axis.settings, SCAN_WINDOW + 500)
    token_id, token, token_hash = tokens.generate()
    await axis.store.issue_token(token_id, token_hash, "auditor", None, actor="test")
    who = {"Authorization": f"Bearer {token}"}
    pages: list[list[Any]] = []
    cursor = ""
    while True:
        status, page = await axis.get(who, f"/v1/audit/events?type=token_issued{cursor}")
        assert status == 200
        pages.append(page["items"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(pages) == 2
    assert len(pages[0]) == 1  # the admin token of the harness, at the start
    assert pages[0][0]["detail"]["role"] == "admin"
    assert [e["detail"]["token_id"] for e in pages[1]] == [token_id]
