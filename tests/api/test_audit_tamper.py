"""Tampering with the store's tables behind the axis's back is caught, at the right event.

Each test edits, deletes, inserts, reorders or truncates rows with a plain connection while the
axis runs, then asks both ``GET /v1/audit/verify`` and ``axis audit verify`` (exit 1).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from axis import audit, bootstrap, tokens
from axis.audit import StoredEvent
from axis.config import Settings
from axis.jobs import make_checkpoint
from tests.support.harness import AxisHarness
from tests.support.rawsql import settings_sql

ROOT = Path(__file__).resolve().parents[2]
G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
COLUMNS = "seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"


def sql(settings: Settings, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Run statements on the axis's tables in one transaction, as an intruder would."""
    conn = settings_sql(settings)
    conn.execute("BEGIN")
    for statement in statements:
        text, args = statement if isinstance(statement, tuple) else (statement, ())
        conn.execute(text, args)
    conn.execute("COMMIT")


def rows(settings: Settings) -> list[StoredEvent]:
    conn = settings_sql(settings)
    return [
        StoredEvent(*r) for r in conn.execute(f"SELECT {COLUMNS} FROM audit_events ORDER BY seq")
    ]


def run_verify(settings: Settings, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axis", "audit", "verify", "--data", str(settings.data), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def cli_verify(settings: Settings, *extra: str) -> tuple[int, dict[str, Any]]:
    """`axis audit verify`: its exit status and the verdict it prints."""
    done = run_verify(settings, *extra)
    assert done.stdout, done.stderr
    return done.returncode, orjson.loads(done.stdout.splitlines()[-1])


@pytest.fixture
async def who(axis: AxisHarness) -> dict[str, str]:
    """An auditor token, issued before the test counts events (issuing one is an event)."""
    token_id, token, token_hash = tokens.generate()
    await axis.store.issue_token(token_id, token_hash, "auditor", None, actor="test")
    return {"Authorization": f"Bearer {token}"}


async def api_verify(axis: AxisHarness, who: dict[str, str]) -> dict[str, Any]:
    status, verdict = await axis.get(who, "/v1/audit/verify")
    assert status == 200
    return dict(verdict)


async def some_mail(axis: AxisHarness, documents: int = 2) -> None:
    sender = await axis.register(G22)
    recipient = await axis.register(H41)
    for _ in range(documents):
        status, sent = await axis.send(sender, axis.edoc(sender, [H41, "000.00.00.H05"]))
        assert status == 201
        assert (await axis.get(recipient, f"/v1/inbox/{sent['id']}"))[0] == 200


async def expect_broken(
    axis: AxisHarness, who: dict[str, str], first_bad: int, *words: str
) -> None:
    """Both the API and the command line name ``first_bad``; the CLI exits 1."""
    verdict = await api_verify(axis, who)
    assert verdict["ok"] is False, verdict
    assert verdict["first_bad_seq"] == first_bad, verdict
    for word in words:
        assert word in verdict["reason"], verdict
    code, printed = cli_verify(axis.settings)
    assert code == 1
    assert printed["first_bad_seq"] == first_bad


def shift_from(seq: int) -> list[str | tuple[str, tuple[Any, ...]]]:
    """Renumber events ``seq`` and later one up, making room for an inserted one."""
    return [
        ("UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= ?", (seq,)),
        "UPDATE audit_events SET seq = -seq WHERE seq < 0",
    ]


Tamper = Callable[[Settings], int]


def edit_actor(settings: Settings) -> int:
    sql(settings, "UPDATE audit_events SET actor = 'admin:nobody' WHERE seq = 5")
    return 5


def edit_detail(settings: Settings) -> int:
    received = next(r for r in rows(settings) if r.type == "message_received")
    edited = orjson.dumps({**received.detail, "size": 1}).decode()
    sql(settings, ("UPDATE audit_events SET detail = ? WHERE seq = ?", (edited, received.seq)))
    return received.seq


def garble_detail(settings: Settings) -> int:
    sql(settings, "UPDATE audit_events SET detail = '{\"size\": 1' WHERE seq = 4")
    return 4


def delete_one(settings: Settings) -> int:
    sql(settings, "DELETE FROM audit_events WHERE seq = 6")
    return 6


def insert_one(settings: Settings) -> int:
    copied = rows(settings)[1]
    values = (4, copied.at, "delivery_acked", copied.actor, copied.message_id, None, None, None)
    sql(
        settings,
        *shift_from(4),
        (
            f"INSERT INTO audit_events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (*values, "{}", copied.hash),
        ),
    )
    return 4


def reorder_two(settings: Settings) -> int:
    sql(
        settings,
        "UPDATE audit_events SET seq = -1 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 7",
        "UPDATE audit_events SET seq = 7 WHERE seq = -1",
    )
    return 3


@pytest.mark.parametrize(
    "tamper",
    [edit_actor, edit_detail, garble_detail, delete_one, insert_one, reorder_two],
    ids=lambda f: f.__name__,
)
async def test_tampering_names_the_first_bad_event(
    axis: AxisHarness, who: dict[str, str], tamper: Tamper
) -> None:
    """Editing, deleting, inserting or reordering one row is caught at that row."""
    await some_mail(axis)
    assert (await api_verify(axis, who))["ok"] is True
    first_bad = tamper(axis.settings)
    await expect_broken(axis, who, first_bad)
    status, page = await axis.get(who, "/v1/audit/events?limit=1000")
    assert status == 200  # a tampered log can still be read, to see what was done
    assert [e["seq"] for e in page["items"]][:3] == [1, 2, 3]


async def test_history_cut_back_behind_a_checkpoint_is_caught(
    axis: AxisHarness, who: dict[str, str]
) -> None:
    """Deleting the newest events past the last checkpoint names the first one deleted."""
    await some_mail(axis, documents=1)
    checkpoint = await make_checkpoint(axis.store, bootstrap.load_key(axis.settings), actor="t")
    assert checkpoint is not None
    await some_mail(axis, documents=1)
    keep = checkpoint.seq - 3
    sql(axis.settings, ("DELETE FROM audit_events WHERE seq > ?", (keep,)))
    await expect_broken(axis, who, keep + 1, "cut back")


async def test_cutting_only_the_checkpoint_event_is_caught(
    axis: AxisHarness, who: dict[str, str]
) -> None:
    """The checkpoint row survives the event that recorded it: the cut is still seen."""
    await some_mail(axis, documents=1)
    checkpoint = await make_checkpoint(axis.store, bootstrap.load_key(axis.settings), actor="t")
    assert checkpoint is not None
    sql(axis.settings, ("DELETE FROM audit_events WHERE seq > ?", (checkpoint.seq,)))
    await expect_broken(axis, who, checkpoint.seq + 1, "cut back")


async def test_rewritten_history_with_fresh_hashes_is_caught_by_checkpoints(
    axis: AxisHarness, who: dict[str, str]
) -> None:
    """Recomputing every hash after an edit fools the chain, not the later checkpoint: the
    verdict names the first event after the last checkpoint that still holds."""
    key = bootstrap.load_key(axis.settings)
    await some_mail(axis, documents=1)
    first = await make_checkpoint(axis.store, key, actor="t")
    await some_mail(axis, documents=1)
    second = await make_checkpoint(axis.store, key, actor="t")
    assert first is not None and second is not None
    chain = rows(axis.settings)
    k = first.seq + 3
    prev = chain[k - 2].hash
    updates: list[str | tuple[str, tuple[Any, ...]]] = []
    for row in chain[k - 1 :]:
        if row.seq == k:
            row = replace(row, actor="admin:forger")
        digest = audit.expected_hash(prev, row)
        assert digest is not None
        updates.append(
            (
                "UPDATE audit_events SET actor = ?, hash = ? WHERE seq = ?",
                (row.actor, digest, row.seq),
            )
        )
        prev = digest
    sql(axis.settings, *updates)
    await expect_broken(axis, who, first.seq + 1, "rewritten")


async def test_a_removed_or_altered_checkpoint_is_caught(
    axis: AxisHarness, who: dict[str, str]
) -> None:
    """Deleting a checkpoint row, or changing its signed document, is named at its event."""
    key = bootstrap.load_key(axis.settings)
    await some_mail(axis, documents=1)
    checkpoint = await make_checkpoint(axis.store, key, actor="t")
    assert checkpoint is not None
    recorded = checkpoint.seq + 1
    forged = checkpoint.xml.replace(b"<Seq>", b"<Seq>1")
    sql(axis.settings, ("UPDATE audit_checkpoints SET xml = ?", (forged,)))
    await expect_broken(axis, who, recorded, "does not verify")
    sql(axis.settings, "DELETE FROM audit_checkpoints")
    await expect_broken(axis, who, recorded, "missing")


async def test_a_kept_checkpoint_catches_a_cut_of_both_tables(
    axis: AxisHarness, who: dict[str, str], tmp_path: Path
) -> None:
    """Cutting the events and the checkpoints together fools the axis alone, not an auditor
    who kept a checkpoint: `axis audit verify --checkpoint FILE` names the first event cut."""
    key = bootstrap.load_key(axis.settings)
    await some_mail(axis, documents=1)
    keep = len(rows(axis.settings)) - 2
    checkpoint = await make_checkpoint(axis.store, key, actor="t")
    assert checkpoint is not None
    kept = tmp_path / "kept.xml"
    kept.write_bytes(checkpoint.xml)
    assert cli_verify(axis.settings, "--checkpoint", str(kept))[0] == 0
    sql(
        axis.settings,
        ("DELETE FROM audit_events WHERE seq > ?", (keep,)),
        "DELETE FROM audit_checkpoints",
    )
    assert (await api_verify(axis, who))["ok"] is True  # nothing left in the file to tell
    code, verdict = cli_verify(axis.settings, "--checkpoint", str(kept))
    assert code == 1
    assert verdict["first_bad_seq"] == keep + 1
    assert "kept.xml" in verdict["reason"]
    kept.write_bytes(checkpoint.xml.replace(b"<Seq>", b"<Seq>9"))
    refused = run_verify(axis.settings, "--checkpoint", str(kept))
    assert refused.returncode == 1  # a forged kept checkpoint is refused, not trusted
    assert "not a valid checkpoint" in refused.stderr
