"""A store that cannot take writes (disk full) answers 503 and loses nothing already accepted."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
import structlog

from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


def _writer_connection(axis: AxisHarness) -> sqlite3.Connection:
    """The SQLite writer's connection: the test caps its size to stand in for a full disk."""
    conn = axis.store.backend.writer._conn  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    return conn


@pytest.mark.sqlite_only  # SQLite's own file filling up
async def test_a_full_store_answers_503_and_keeps_what_it_had(axis: AxisHarness) -> None:
    """When the store is full a send is 503 unavailable; after space returns it is accepted."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    status, first = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201
    conn = _writer_connection(axis)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    big = axis.edoc(sender, [H41], attachment_bytes=100_000)
    with structlog.testing.capture_logs() as logs:
        async with axis.session.post(
            f"{axis.url}/v1/edocs",
            data=big,
            headers={**sender.auth, "Content-Type": "application/xml"},
        ) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"]
            problem = await resp.json(content_type=None)
    assert problem["code"] == "unavailable"
    assert "nothing was stored" in problem["detail"]
    failed = [e for e in logs if e["event"] == "store_commit_failed"]
    assert failed and "full" in failed[0]["error"]  # the operator's log names the cause
    conn.execute("PRAGMA max_page_count=1073741823")
    status, second = await axis.send(sender, big)
    assert status == 201, second
    _, inbox = await axis.get(receiver, "/v1/inbox")
    assert [m["id"] for m in inbox["items"]] == [first["id"], second["id"]]


@pytest.mark.parametrize(
    ("blocked", "size"),
    [(("tmp_dir", "blob_dir"), 1_500_000), (("blob_dir",), 400_000)],
    ids=["spooled", "kept-as-blob"],
)
@pytest.mark.sqlite_only  # SQLite's own file filling up
async def test_a_data_directory_that_refuses_files_answers_503(
    axis: AxisHarness, blocked: tuple[str, ...], size: int
) -> None:
    """A large body that cannot be spooled or kept is 503 unavailable, not a crash; none kept."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    paths = [getattr(axis.settings, name) for name in blocked]
    for path in paths:  # a file where a directory must go: every write below it fails
        if path.exists():
            shutil.rmtree(path)
        path.write_bytes(b"")
    big = axis.edoc(sender, [H41], attachment_bytes=size)
    status, problem = await axis.send(sender, big)
    assert (status, problem["code"]) == (503, "unavailable")
    for path in paths:
        path.unlink()
    status, answer = await axis.send(sender, big)
    assert status == 201, answer
    _, inbox = await axis.get(receiver, "/v1/inbox")
    assert [m["id"] for m in inbox["items"]] == [answer["id"]]
