"""The audit chain, pure: hashes, tamper detection with its first bad seq, checkpoints."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import Any

import orjson
import pytest
import xmlsec
from hypothesis import assume, given
from hypothesis import strategies as st
from lxml import etree

from axis import audit, signing
from axis.audit import Anchor, Event, StoredEvent
from tests.support import pki

TYPES = ("message_received", "delivery_queued", "delivery_acked", "agency_changed", "checkpoint")
ids = st.sampled_from((None, "msg_1", "msg_2", "000.00.00.G22", "000.00.00.H41", "D,1/2"))
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=6)
details = st.dictionaries(
    st.sampled_from(("sha256", "size", "reason", "state", "Tên")),
    json_scalars | st.lists(json_scalars, max_size=3),
    max_size=3,
)
times = st.integers(0, 59).map(lambda s: f"2026-11-23T10:00:{s:02d}.000000+00:00")


@st.composite
def events(draw: st.DrawFn) -> tuple[str, Event]:
    # "checkpoint" events need their checkpoint row: plain chains leave them out
    kind = draw(st.sampled_from(TYPES[:-1]))
    return draw(times), Event(
        type=kind,
        actor=draw(st.sampled_from(("axis", "agency:000.00.00.G22", "admin:tok_1"))),
        message_id=draw(ids),
        document_id=draw(ids),
        from_id=draw(ids),
        to_id=draw(ids),
        detail=draw(details),
    )


chains = st.lists(events(), min_size=1, max_size=16).map(audit.build_chain)


def rechain(rows: list[StoredEvent], start: int = 0) -> list[StoredEvent]:
    """Recompute every hash from ``rows[start]`` on, as someone rewriting history would."""
    out = rows[:start]
    prev = out[-1].hash if out else audit.GENESIS
    for row in rows[start:]:
        fixed = replace(row, hash=audit.expected_hash(prev, row) or "")
        out.append(fixed)
        prev = fixed.hash
    return out


def first_bad(rows: list[StoredEvent], anchors: list[Anchor] | None = None) -> int | None:
    breach = audit.verify_events(rows, anchors or [])
    return breach.seq if breach else None


# --- the chain ----------------------------------------------------------------------------


def test_hash_covers_the_previous_hash_and_canonical_content() -> None:
    """An event's hash is SHA-256 over the previous hash and its sorted-key JSON."""
    event = Event("message_received", "axis", detail={"b": 1, "a": [1, 2]})
    content = audit.canonical(7, "2026-11-23T10:00:00.000000+00:00", event)
    assert content.startswith(b'{"actor":"axis","at":"2026-11-23T10:00:00.000000+00:00"')
    assert b'"detail":{"a":[1,2],"b":1}' in content
    assert audit.chain_hash(audit.GENESIS, content) != audit.chain_hash("1" * 64, content)


@given(chains)
def test_an_untouched_chain_verifies(rows: list[StoredEvent]) -> None:
    """A chain built event after event verifies from the genesis."""
    assert first_bad(rows) is None


@given(chains, st.data())
def test_an_edited_event_is_named(rows: list[StoredEvent], data: st.DataObject) -> None:
    """Changing any field of one stored event makes it the first bad seq."""
    k = data.draw(st.integers(0, len(rows) - 1))
    field = data.draw(
        st.sampled_from(
            ("at", "type", "actor", "message_id", "document_id", "from_id", "to_id", "hash")
        )
    )
    value: Any = data.draw(times if field == "at" else st.text(min_size=1, max_size=10))
    assume(getattr(rows[k], field) != value)
    rows[k] = replace(rows[k], **{field: value})
    assert first_bad(rows) == rows[k].seq


@given(chains, st.data())
def test_an_edited_detail_is_named(rows: list[StoredEvent], data: st.DataObject) -> None:
    """Changing what an event's detail says (not merely its spacing) is caught at that event."""
    k = data.draw(st.integers(0, len(rows) - 1))
    new = data.draw(details)
    assume(new != rows[k].detail)
    rows[k] = replace(rows[k], detail_json=orjson.dumps(new).decode())
    assert first_bad(rows) == k + 1


@given(chains, st.data())
def test_a_deleted_event_is_named(rows: list[StoredEvent], data: st.DataObject) -> None:
    """Deleting an event that is not the last names its seq (the first one missing)."""
    assume(len(rows) >= 2)
    k = data.draw(st.integers(0, len(rows) - 2))
    del rows[k]
    assert first_bad(rows) == k + 1


@given(chains, st.data(), events(), st.booleans())
def test_an_inserted_event_is_named(
    rows: list[StoredEvent], data: st.DataObject, new: tuple[str, Event], chained: bool
) -> None:
    """An inserted event (the rest renumbered) is named; one whose hash the forger chained to
    its predecessor passes itself, and the event after it is named."""
    k = data.draw(st.integers(0, len(rows)))
    prev = rows[k - 1].hash if k else audit.GENESIS
    inserted = replace(audit.build_chain([new])[0], seq=k + 1)
    right = audit.expected_hash(prev, inserted) or ""
    made_up = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    assume(made_up != right)
    inserted = replace(inserted, hash=right if chained else made_up)
    tampered = [*rows[:k], inserted, *(replace(r, seq=r.seq + 1) for r in rows[k:])]
    if not chained:
        assert first_bad(tampered) == k + 1
    elif k < len(rows):
        assert first_bad(tampered) == k + 2
    else:  # properly appended at the end: only a later checkpoint could tell (see below)
        assert first_bad(tampered) is None


@given(chains, st.data())
def test_reordered_events_are_named(rows: list[StoredEvent], data: st.DataObject) -> None:
    """Swapping two events' places names the earlier place."""
    assume(len(rows) >= 2)
    i = data.draw(st.integers(0, len(rows) - 2))
    j = data.draw(st.integers(i + 1, len(rows) - 1))
    a, b = rows[i], rows[j]
    assume(replace(a, seq=0, hash="") != replace(b, seq=0, hash=""))
    rows[i], rows[j] = replace(b, seq=a.seq), replace(a, seq=b.seq)
    assert first_bad(rows) == i + 1


@given(chains, st.data())
def test_a_cut_behind_a_checkpoint_is_named(rows: list[StoredEvent], data: st.DataObject) -> None:
    """Truncating the log before an event a checkpoint signed names the first event cut."""
    s = data.draw(st.integers(1, len(rows)))
    anchor = Anchor(s, rows[s - 1].hash, "checkpoint")
    keep = data.draw(st.integers(0, s - 1))
    assert first_bad(rows[:keep], [anchor]) == keep + 1
    assert first_bad(rows, [anchor]) is None


@given(chains, st.data())
def test_history_rewritten_with_fresh_hashes_is_caught_by_a_later_checkpoint(
    rows: list[StoredEvent], data: st.DataObject
) -> None:
    """Recomputing every hash after an edit fools the chain, not a checkpoint signed later:
    the verdict names the first event after the last checkpoint that still agrees."""
    signed = sorted(set(data.draw(st.lists(st.integers(1, len(rows)), max_size=4))))
    anchors = [Anchor(s, rows[s - 1].hash, f"checkpoint {s}") for s in signed]
    k = data.draw(st.integers(0, len(rows) - 1))
    new_actor = data.draw(st.text(min_size=1, max_size=5))
    assume(new_actor != rows[k].actor)
    rows[k] = replace(rows[k], actor=new_actor)
    rewritten = rechain(rows, k)
    later = [s for s in signed if s >= k + 1]
    earlier = [s for s in signed if s < k + 1]
    expected = (max(earlier) if earlier else 0) + 1 if later else None
    assert first_bad(rewritten, anchors) == expected


def test_events_missing_at_the_start_are_named() -> None:
    """A log that does not start at 1 lost its first events."""
    rows = audit.build_chain([("t", Event("agency_changed", "axis"))] * 3)
    assert first_bad(rows[1:]) == 1


# --- checkpoints ----------------------------------------------------------------------------


@pytest.fixture
def axis_key(axis_key_pair: tuple[bytes, bytes]) -> signing.AxisKey:
    return signing.AxisKey.load(*axis_key_pair)


def signed_checkpoint(key: signing.AxisKey, seq: int = 5, head: str = "ab" * 32) -> bytes:
    element = audit.checkpoint_element(seq, head, "2026-11-23T10:00:00.000000+00:00", issuer="axis")
    return key.sign_enveloped(element)


def test_a_signed_checkpoint_reads_back(axis_key: signing.AxisKey) -> None:
    """The checkpoint document says seq, hash and time, and verifies with the axis cert."""
    xml = signed_checkpoint(axis_key)
    checkpoint = audit.CheckpointReader([axis_key.cert_pem]).read(xml)
    assert (checkpoint.seq, checkpoint.hash) == (5, "ab" * 32)
    assert checkpoint.at == "2026-11-23T10:00:00.000000+00:00"
    assert checkpoint.event("axis").detail["sha256"] == checkpoint.sha256


def test_a_forged_checkpoint_is_refused(axis_key: signing.AxisKey) -> None:
    """Changing what a checkpoint signs, or signing with another key, fails verification."""
    reader = audit.CheckpointReader([axis_key.cert_pem])
    xml = signed_checkpoint(axis_key)
    with pytest.raises(audit.CheckpointInvalid, match="does not verify"):
        reader.read(xml.replace(b"<Seq>5</Seq>", b"<Seq>9</Seq>"))
    intruder = pki.identity("p256", common_name="intruder")
    other = signing.AxisKey.load(intruder.key_pem, intruder.cert_pem)
    with pytest.raises(audit.CheckpointInvalid, match="does not verify"):
        reader.read(signed_checkpoint(other))
    with pytest.raises(audit.CheckpointInvalid, match="well-formed"):
        reader.read(b"<Checkpoint")
    receipt = etree.Element("Receipt")
    with pytest.raises(audit.CheckpointInvalid, match="not a checkpoint"):
        reader.read(axis_key.sign_enveloped(receipt))


def test_a_comment_cannot_change_what_a_checkpoint_says(axis_key: signing.AxisKey) -> None:
    """Comments are outside the signature: one splitting <Seq>50</Seq> would read as 5."""
    xml = signed_checkpoint(axis_key, seq=50)
    split = xml.replace(b"<Seq>50</Seq>", b"<Seq>5<!-- -->0</Seq>")
    root = etree.fromstring(split)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(axis_key.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    context.verify(xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature))  # still "valid"
    with pytest.raises(audit.CheckpointInvalid, match="no comments"):
        audit.CheckpointReader([axis_key.cert_pem]).read(split)


def test_a_checkpoint_event_needs_its_checkpoint() -> None:
    """A ``checkpoint`` event whose checkpoint row is gone (or does not verify) is named."""
    plain = [("t", Event("agency_changed", "axis"))] * 3
    rows = audit.build_chain(plain)
    cp = audit.Checkpoint(3, rows[-1].hash, "t", b"<xml/>")
    rows = audit.build_chain(
        [*plain, ("t", cp.event("axis")), ("t", Event("token_issued", "axis"))]
    )
    recorded = Anchor(3, cp.hash, "checkpoint", sha256=cp.sha256, recorded=True)
    assert first_bad(rows, [recorded]) is None
    assert first_bad(rows) == 4  # the row is missing
    other = replace(recorded, sha256="0" * 64)
    assert first_bad(rows, [other]) == 4  # the row is not the one the chain recorded
    # the checkpoint row survives, the event recording it was cut off
    assert first_bad(rows[:3], [recorded]) == 4


def test_a_rejected_checkpoint_row_is_named_at_its_event() -> None:
    """A checkpoint row that does not verify is reported where the chain records it."""
    plain = [("t", Event("agency_changed", "axis"))] * 2
    cp = audit.Checkpoint(2, audit.build_chain(plain)[-1].hash, "t", b"<x/>")
    rows = audit.build_chain([*plain, ("t", cp.event("axis"))])
    verifier = audit.ChainVerifier()
    verifier.reject(2, "the signature does not verify")
    for row in rows:
        verifier.feed(row)
    breach = verifier.finish()
    assert breach is not None and breach.seq == 3 and "does not verify" in breach.reason


# --- formats --------------------------------------------------------------------------------


@given(chains)
def test_exports_carry_the_stored_values(rows: list[StoredEvent]) -> None:
    """JSON lines and CSV give back every field exactly as stored."""
    lines = audit.jsonl(rows).splitlines()
    assert [orjson.loads(line)["hash"] for line in lines] == [r.hash for r in rows]
    for line, row in zip(lines, rows, strict=True):
        item = orjson.loads(line)
        assert item["detail"] == row.detail
        assert (item["from"], item["to"], item["seq"]) == (row.from_id, row.to_id, row.seq)
    text = (audit.csv_rows([], header=True) + audit.csv_rows(rows)).decode()
    table = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [int(r["seq"]) for r in table] == [r.seq for r in rows]
    for out, row in zip(table, rows, strict=True):
        assert out["detail"] == row.detail_json
        assert out["actor"] == row.actor
        assert (out["message_id"] or None) == row.message_id


def test_verdict_has_the_contracts_shape() -> None:
    """`{"ok", "events", "head": {"seq", "hash"}}`, plus `first_bad_seq` when broken."""
    good = audit.Verdict(ok=True, events=3, head_seq=3, head_hash="h", checkpoints=0)
    assert good.to_json()["head"] == {"seq": 3, "hash": "h"}
    assert "first_bad_seq" not in good.to_json()
    bad = replace(good, ok=False, first_bad_seq=2, reason="edited")
    assert bad.to_json()["first_bad_seq"] == 2
