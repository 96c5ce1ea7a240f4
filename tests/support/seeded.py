"""A live `axis serve` on a seeded data directory, for tools that drive a real server.

The data directory gets two agencies with pinned certificates (000.00.00.G22 and
000.00.00.H41) and tokens for each, an admin and an auditor; once the server answers,
documents go both ways, one is fetched and one acknowledged, and a status packet is sent, so
every listing has items and every id-taking endpoint has a real id to be given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from axis import bootstrap, tokens
from axis.config import Settings
from axis.model import Role
from axis.registry import Certificate
from axis.store import open_store
from tests.support import packets, pki, signers

ROOT = Path(__file__).resolve().parents[2]
G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


@dataclass
class Seeded:
    url: str
    tokens: dict[str, str]  # "agency" (G22), "receiver" (H41), "admin", "auditor"
    message_ids: list[str]
    proc: subprocess.Popen[bytes]


async def _prepare(settings: Settings, idents: dict[str, pki.Identity]) -> dict[str, str]:
    await bootstrap.initialize(settings)
    store = open_store(settings)
    await store.open()
    try:
        registry = await store.registry()
        for organ_id, ident in idents.items():
            agency = registry.get(organ_id)
            assert agency is not None
            pin = (Certificate.from_pem(ident.cert_pem),)
            await store.put_agency(replace(agency, certificates=pin), actor="test")
        issued: dict[str, str] = {}
        plan: list[tuple[str, Role, str | None]] = [
            ("agency", "agency", G22),
            ("receiver", "agency", H41),
            ("admin", "admin", None),
            ("auditor", "auditor", None),
        ]
        for name, role, organ_id in plan:
            token_id, token, token_hash = tokens.generate()
            await store.issue_token(token_id, token_hash, role, organ_id, actor="test")
            issued[name] = token
        return issued
    finally:
        await store.close()


async def _traffic(
    session: aiohttp.ClientSession,
    url: str,
    issued: dict[str, str],
    idents: dict[str, pki.Identity],
) -> list[str]:
    """Documents both ways, a fetch, an ack and a status packet; the message ids."""

    def auth(name: str, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issued[name]}", **more}

    xml = {"Content-Type": "application/xml"}
    ids: list[str] = []
    docs: list[str] = []
    for n, (sender, frm, to) in enumerate(
        [("agency", G22, H41), ("agency", G22, H41), ("receiver", H41, G22)]
    ):
        document_id = f"{frm},2026/12/04,{n + 1}/SEED"
        body = signers.sign(
            packets.edoc_xml(frm, [to], document_id=document_id),
            idents[frm].key_pem,
            idents[frm].cert_pem,
        )
        async with session.post(f"{url}/v1/edocs", data=body, headers=auth(sender, **xml)) as r:
            assert r.status == 201, await r.text()
            ids.append((await r.json())["id"])
            docs.append(document_id)
    async with session.get(f"{url}/v1/inbox/{ids[0]}", headers=auth("receiver")) as r:
        assert r.status == 200
    ack = {"result": "done"}
    async with session.post(
        f"{url}/v1/inbox/{ids[1]}/ack", json=ack, headers=auth("receiver")
    ) as r:
        assert r.status == 200, await r.text()
    status = signers.sign(
        packets.status_xml(H41, G22, docs[0], "01"), idents[H41].key_pem, idents[H41].cert_pem
    )
    async with session.post(
        f"{url}/v1/statuses", data=status, headers=auth("receiver", **xml)
    ) as r:
        assert r.status == 201, await r.text()
        ids.append((await r.json())["id"])
    return ids


def _start(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AXIS_LOG_LEVEL": "warning", "AXIS_PUSH_ENABLED": "false"}
    with log.open("wb") as stderr:  # a file, not a pipe: a chatty server never blocks on it
        return subprocess.Popen(
            [sys.executable, "-m", "axis", "serve", "--data", str(settings.data),
             "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def seeded_axis(settings: Settings, port: int, log: Path) -> AsyncIterator[Seeded]:
    """`axis serve` on ``settings.data`` at ``port``, seeded, its stderr in ``log``."""
    idents = {code: pki.identity("rsa2048", common_name=f"{code} seed") for code in (G22, H41)}
    issued = await _prepare(settings, idents)
    proc = _start(settings, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(30):
                while True:
                    assert proc.poll() is None, f"axis serve exited at start; see {log}"
                    try:
                        async with session.get(f"{url}/healthz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
            ids = await _traffic(session, url, issued, idents)
        yield Seeded(url, issued, ids, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
