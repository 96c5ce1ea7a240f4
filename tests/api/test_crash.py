"""Durability: a server killed with SIGKILL mid-load loses nothing it answered 201 for."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from axis import bootstrap, tokens
from axis.config import Settings
from axis.registry import Certificate
from axis.store import open_store
from tests.support import packets, pki, signers

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def prepare(settings: Settings, ident: pki.Identity) -> tuple[str, str]:
    """Initialise the data directory with a sender (pinned certificate) and two tokens."""
    await bootstrap.initialize(settings)
    store = open_store(settings)
    await store.open()
    try:
        registry = await store.registry()
        g22 = registry.get(G22)
        assert g22 is not None
        from dataclasses import replace

        await store.put_agency(
            replace(g22, certificates=(Certificate.from_pem(ident.cert_pem),)), actor="test"
        )
        out = []
        for organ_id in (G22, H41):
            token_id, token, token_hash = tokens.generate()
            await store.issue_token(token_id, token_hash, "agency", organ_id, actor="test")
            out.append(token)
        return out[0], out[1]
    finally:
        await store.close()


def start_server(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AXIS_LOG_LEVEL": "warning"}
    return subprocess.Popen(
        [sys.executable, "-m", "axis", "serve", "--data", str(settings.data), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_ready(
    session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        try:
            async with session.get(f"{url}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("server did not come up")


@pytest.mark.slow
async def test_sigkill_mid_load_keeps_every_201_exactly_once(settings: Settings) -> None:
    """Every package answered 201 before a SIGKILL is in its inbox exactly once after restart."""
    ident = pki.identity("rsa2048", common_name="G22 crash signer", slot=3)
    send_token, recv_token = await prepare(settings, ident)
    bodies = [
        signers.sign(
            packets.edoc_xml(G22, [H41], document_id=f"{G22},2026/11/23,{i}/CRASH"),
            ident.key_pem,
            ident.cert_pem,
        )
        for i in range(400)
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(settings, port)
    accepted: dict[int, str] = {}
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, proc)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(len(bodies)):
                queue.put_nowait(i)
            headers = {"Authorization": f"Bearer {send_token}", "Content-Type": "application/xml"}

            async def sender() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    try:
                        async with session.post(
                            f"{url}/v1/edocs", data=bodies[i], headers=headers
                        ) as r:
                            if r.status == 201:
                                accepted[i] = (await r.json())["id"]
                    except (TimeoutError, aiohttp.ClientError):
                        return

            async def killer() -> None:
                while len(accepted) < 120:  # noqa: ASYNC110 - polling a plain dict is the point
                    await asyncio.sleep(0.001)
                proc.send_signal(signal.SIGKILL)

            await asyncio.gather(killer(), *(sender() for _ in range(16)))
        proc.wait(10)
        assert 120 <= len(accepted) < len(bodies), "the kill should land mid-load"

        proc = start_server(settings, port)
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, proc)
            seen: list[str] = []
            cursor = ""
            while True:
                async with session.get(
                    f"{url}/v1/inbox?limit=1000{cursor}",
                    headers={"Authorization": f"Bearer {recv_token}"},
                ) as r:
                    page = await r.json()
                seen += [m["id"] for m in page["items"]]
                if not page["next_cursor"]:
                    break
                cursor = f"&cursor={page['next_cursor']}"
            counts = Counter(seen)
            assert all(n == 1 for n in counts.values())
            missing = set(accepted.values()) - set(counts)
            assert not missing, f"{len(missing)} messages answered 201 were lost"
            # a resend of an accepted package is recognised, not stored twice
            i, mid = next(iter(accepted.items()))
            headers = {"Authorization": f"Bearer {send_token}", "Content-Type": "application/xml"}
            async with session.post(f"{url}/v1/edocs", data=bodies[i], headers=headers) as r:
                assert r.status == 200
                assert (await r.json())["id"] == mid
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
