"""The audit chain, pure: canonical event content and the hash that links each to the last.

An event's hash covers its canonical JSON and the previous hash, so editing, deleting,
inserting or reordering any stored event breaks every hash after it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Event:
    """One state change or administrative act, as recorded."""

    type: str
    actor: str
    message_id: str | None = None
    document_id: str | None = None
    from_id: str | None = None
    to_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def canonical(seq: int, at: str, event: Event) -> bytes:
    """Sorted-key compact JSON of everything an auditor sees, the hash excepted."""
    return orjson.dumps(
        {
            "seq": seq,
            "at": at,
            "type": event.type,
            "actor": event.actor,
            "message_id": event.message_id,
            "document_id": event.document_id,
            "from": event.from_id,
            "to": event.to_id,
            "detail": event.detail,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()
