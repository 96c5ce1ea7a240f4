"""Several writers on one SQLite file (``--workers``, ``axis worker``, the CLI) take turns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from axis.config import build_settings
from axis.store import open_store
from tests.store.conftest import AGENCIES
from tests.store.test_contract import H01, H02, message


async def test_two_writers_on_one_file_interleave_and_lose_nothing(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> None:
    """Concurrent batches from two stores queue for the write lock; every accept lands once."""
    settings = build_settings({"data": tmp_path / "var"}, env={})
    first, second = open_store(settings), open_store(settings)
    await first.open()
    await first.initialize(AGENCIES)
    await second.open()
    try:
        sent = [message(H01, (H02,)) for _ in range(80)]
        accepts = [(first if i % 2 else second).accept(m) for i, m in enumerate(sent)]
        # a bound, not a speed check: a writer that never gets the lock fails instead of hanging
        results = await asyncio.wait_for(asyncio.gather(*accepts), timeout=120)
        assert all(r.created for r in results)
        for store in (first, second):
            for m in sent:
                record = await store.message(m.id)
                assert record is not None and record.recipients[0].state == "queued"
        verdict = await first.verify_audit([axis_key_pair[1]])
        assert verdict.ok, verdict  # one chain, whichever writer appended each event
    finally:
        await second.close()
        await first.close()
