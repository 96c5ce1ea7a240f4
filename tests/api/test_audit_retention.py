"""Retention: old bodies go, digests, metadata and the verifiable trail stay."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from axis import blobs, ids, timeutil, tokens
from axis.config import Settings
from axis.model import NewMessage
from axis.routing import Route
from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, TestAgency, start_axis

ROOT = Path(__file__).resolve().parents[2]
G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


def stored_body(settings: Settings, message_id: str) -> tuple[bytes | None, str | None]:
    conn = sqlite3.connect(settings.sqlite_path)
    try:
        row = conn.execute(
            "SELECT body, body_file FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        return row[0], row[1]
    finally:
        conn.close()


def exists(path: Path) -> bool:
    return path.exists()


def sql(settings: Settings, statement: str) -> None:
    conn = sqlite3.connect(settings.sqlite_path, isolation_level=None, timeout=30)
    try:
        conn.execute(statement)
    finally:
        conn.close()


def blob(settings: Settings, sha256: str) -> Path:
    return settings.blob_dir / sha256[:2] / sha256


async def delivered(axis: AxisHarness, sender: TestAgency, recipient: TestAgency, **kw: int) -> str:
    """Send a document and have the recipient fetch and acknowledge it; its message id."""
    status, sent = await axis.send(sender, axis.edoc(sender, [recipient.organ_id], **kw))
    assert status == 201, sent
    assert (await axis.get(recipient, f"/v1/inbox/{sent['id']}"))[0] == 200
    ack = await axis.post_json(recipient, f"/v1/inbox/{sent['id']}/ack", {"result": "done"})
    assert ack[0] == 200
    return str(sent["id"])


@pytest.mark.sqlite_only  # large bodies as blob files
async def test_purge_drops_old_closed_bodies_and_the_trail_still_verifies(
    axis: AxisHarness,
) -> None:
    """`axis audit purge` drops acknowledged bodies (inline and blob file); the digest, the
    receipt, the trail and the chain stay; a body still owed to a recipient is kept."""
    token_id, token, token_hash = tokens.generate()
    await axis.store.issue_token(token_id, token_hash, "auditor", None, actor="test")
    who = {"Authorization": f"Bearer {token}"}
    sender, recipient = await axis.register(G22), await axis.register(H41)
    small = await delivered(axis, sender, recipient)
    large = await delivered(axis, sender, recipient, attachment_bytes=400_000)
    _, large_file = stored_body(axis.settings, large)
    assert large_file is not None
    large_sha = (await axis.get(sender, f"/v1/messages/{large}"))[1]["sha256"]
    assert blob(axis.settings, large_sha).exists()
    status, owed = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201
    await asyncio.sleep(0.05)  # older than the 10 ms retention below
    done = subprocess.run(  # noqa: ASYNC221 - the command line, as an operator runs it
        [
            sys.executable,
            "-m",
            "axis",
            "audit",
            "purge",
            "--data",
            str(axis.settings.data),
            "--older-than",
            str(0.01 / 86400),
            "--grace",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "purged 2 bodies" in done.stderr and "deleted 1 blob files" in done.stderr
    assert "1 old bodies kept" in done.stderr
    assert stored_body(axis.settings, small) == (None, None)
    assert stored_body(axis.settings, large) == (None, None)
    assert not blob(axis.settings, large_sha).exists()
    assert stored_body(axis.settings, owed["id"])[0] is not None
    for message_id in (small, large):
        status, trail = await axis.get(who, f"/v1/audit/messages/{message_id}")
        assert status == 200
        assert trail["message"]["body_purged_at"] is not None
        assert trail["message"]["sha256"]
        purged = [e for e in trail["events"] if e["type"] == "body_purged"]
        assert len(purged) == 1 and purged[0]["detail"]["sha256"] == trail["message"]["sha256"]
        assert purged[0]["actor"].startswith("cli:")
        receipt = await axis.get(sender, f"/v1/messages/{message_id}/receipt")
        assert receipt[0] == 200 and trail["message"]["sha256"].encode() in receipt[1]
    assert (await axis.get(recipient, f"/v1/inbox/{owed['id']}"))[0] == 200
    status, verdict = await axis.get(who, "/v1/audit/verify")
    assert verdict["ok"] is True


@pytest.mark.sqlite_only  # large bodies as blob files
async def test_a_shared_blob_file_goes_only_with_its_last_user(axis: AxisHarness) -> None:
    """Two messages storing their body in one file: purging one keeps the file."""
    settings = axis.settings
    body = b"<edXML>" + b"x" * 1000 + b"</edXML>"
    sha = hashlib.sha256(body).hexdigest()
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    message_ids = []
    for sender in ("000.00.00.G22", "000.00.00.G01"):
        spooled = settings.tmp_dir / f"{sha}.{ids.new_id('tmp')}"
        spooled.write_bytes(body)
        path = blobs.place(settings, spooled, sha)
        message = NewMessage(
            id=ids.new_id("msg"),
            kind="edoc",
            from_id=sender,
            document_id=f"{sender},shared",
            business_type=0,
            status_code=None,
            sha256=sha,
            size=len(body),
            received_at=timeutil.fmt(timeutil.now()),
            body=None,
            body_file=path,
            routes=(Route(H41, H41),),
            delivery_ids={H41: ids.new_id("dlv")},
            actor=f"agency:{sender}",
        )
        await axis.store.accept(message)
        message_ids.append(message.id)
    first, second = message_ids
    await axis.store.ack(first, H41, "done", None, actor="test")
    later = timeutil.now()
    report = await axis.store.purge_bodies(later, actor="test", grace=0)
    assert (report.messages, report.files, report.held) == (1, 0, 1)
    assert blob(settings, sha).exists()
    fetched = await axis.store.fetch(second, H41, actor="test")
    assert fetched is not None and fetched.body_file is not None
    assert fetched.body_file.read_bytes() == body
    await axis.store.ack(second, H41, "done", None, actor="test")
    report = await axis.store.purge_bodies(later, actor="test", grace=0)
    assert (report.messages, report.files, report.held) == (1, 1, 0)
    assert not blob(settings, sha).exists()


@pytest.mark.sqlite_only  # large bodies as blob files
async def test_a_recently_reused_blob_file_waits_for_a_later_run(axis: AxisHarness) -> None:
    """A file purged or reused (touched by an intake) within the grace period is kept for
    now, and deleted by a later run once the grace period has passed."""
    sender, recipient = await axis.register(G22), await axis.register(H41)
    large = await delivered(axis, sender, recipient, attachment_bytes=400_000)
    sha = (await axis.get(sender, f"/v1/messages/{large}"))[1]["sha256"]
    path = blob(axis.settings, sha)
    report = await axis.store.purge_bodies(timeutil.now(), actor="test", grace=60)
    assert (report.messages, report.files) == (1, 0)  # purged just now: the file waits
    assert exists(path)
    sql(axis.settings, "UPDATE purged_blobs SET since = '2000-01-01T00:00:00.000000+00:00'")
    os.utime(path)  # an intake placing the same bytes has just reused the file
    report = await axis.store.purge_bodies(timeutil.now(), actor="test", grace=60)
    assert (report.messages, report.files) == (0, 0)
    assert exists(path) and not exists(path.with_name(f"{sha}.purging"))
    long_ago = time.time() - 3600
    os.utime(path, (long_ago, long_ago))
    report = await axis.store.purge_bodies(timeutil.now(), actor="test", grace=60)
    assert (report.messages, report.files) == (0, 1)
    assert not exists(path)


async def test_the_axis_purges_by_itself_when_retention_is_set(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> None:
    """With AXIS_RETENTION_DAYS set, acknowledged bodies older than that go without a hand."""
    retention = {"AXIS_RETENTION_DAYS": str(0.2 / 86400)}
    settings = keyed_settings(tmp_path / "retained", axis_key_pair, retention)
    async with start_axis(settings) as axis:
        sender, recipient = await axis.register(G22), await axis.register(H41)
        message_id = await delivered(axis, sender, recipient)
        deadline = time.monotonic() + 20
        while await axis.store.body_purged_at(message_id) is None:
            assert time.monotonic() < deadline, "not purged within 20 s"
            await asyncio.sleep(0.1)
        assert stored_body(settings, message_id) == (None, None)
