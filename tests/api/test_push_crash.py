"""Push across processes: a server killed mid-push delivers everything after a restart, and
``axis worker`` pushes alone from another process sharing the store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from axis import bootstrap, tokens
from axis.config import Settings
from axis.registry import Certificate
from axis.store import open_store
from tests.api.test_crash import free_port, wait_ready
from tests.api.test_push import FAST, SECRET, Receiver, receiving, wait_state
from tests.support import packets, pki, signers
from tests.support.datadir import keyed_settings
from tests.support.harness import start_axis

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
ROOT = Path(__file__).resolve().parents[2]
# leases of one second (twice the timeout): deliveries in flight at the kill are due again
# a second later
ENV = {**FAST, "AXIS_PUSH_LEASE": "0.5", "AXIS_PUSH_TIMEOUT": "0.5", "AXIS_LOG_LEVEL": "warning"}


async def prepare(settings: Settings, ident: pki.Identity, endpoint: str) -> tuple[str, str]:
    """A data directory with G22 pinned to ``ident`` and H41 pushed to ``endpoint``; tokens."""
    await bootstrap.initialize(settings)
    store = open_store(settings)
    await store.open()
    try:
        registry = await store.registry()
        g22, h41 = registry.get(G22), registry.get(H41)
        assert g22 is not None and h41 is not None
        cert = Certificate.from_pem(ident.cert_pem)
        await store.put_agency(replace(g22, certificates=(cert,)), actor="test")
        await store.put_agency(replace(h41, endpoint=endpoint, push_secret=SECRET), actor="test")
        out = []
        for organ_id in (G22, H41):
            token_id, token, token_hash = tokens.generate()
            await store.issue_token(token_id, token_hash, "agency", organ_id, actor="test")
            out.append(token)
        return out[0], out[1]
    finally:
        await store.close()


def start(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "axis", *args, "--data", str(settings.data)],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
async def test_sigkill_mid_push_then_restart_delivers_everything(settings: Settings) -> None:
    """Killed with pushes in flight, the restarted axis pushes every message; the ones in
    flight again once their lease has run out (at least once)."""
    ident = pki.identity("rsa2048", common_name="G22 push crash signer", slot=4)
    crashed = asyncio.Event()

    async def slow_until_crash(
        receiver: Receiver, request: web.Request, body: bytes
    ) -> web.Response:
        if not crashed.is_set():
            await asyncio.sleep(0.2)
        return web.Response(status=200)

    async with receiving(slow_until_crash) as receiver:
        send_token, recv_token = await prepare(settings, ident, receiver.url)
        bodies = [
            signers.sign(
                packets.edoc_xml(G22, [H41], document_id=f"{G22},2026/11/23,{i}/PUSHCRASH"),
                ident.key_pem,
                ident.cert_pem,
            )
            for i in range(30)
        ]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {send_token}", "Content-Type": "application/xml"}
        proc = start(settings, "serve", "--port", str(port))
        try:
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, url, proc)
                accepted: list[str] = []
                for body in bodies:
                    async with session.post(f"{url}/v1/edocs", data=body, headers=headers) as r:
                        assert r.status == 201
                        accepted.append((await r.json())["id"])
                hits = await receiver.wait_hits(6)
                in_flight = hits[-1].headers["X-Axis-Message-Id"]  # answered in 0.2 s: too late
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                crashed.set()
                assert len({h.headers["X-Axis-Message-Id"] for h in receiver.hits}) < len(accepted)

            proc = start(settings, "serve", "--port", str(port))
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, url, proc)
                async with asyncio.timeout(30):
                    while True:
                        async with session.get(
                            f"{url}/v1/inbox?limit=1000",
                            headers={"Authorization": f"Bearer {recv_token}"},
                        ) as r:
                            if not (await r.json())["items"]:
                                break
                        await asyncio.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    counts = Counter(h.headers["X-Axis-Message-Id"] for h in receiver.hits)
    assert set(counts) == set(accepted)
    assert counts[in_flight] >= 2  # pushed again after the crash: receivers dedupe on the id


@pytest.mark.slow
async def test_axis_worker_pushes_alone_from_another_process(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> None:
    """`axis worker` pushes what a server with push disabled accepted, and stops on SIGTERM."""
    settings = keyed_settings(
        tmp_path / "var", axis_key_pair, {**ENV, "AXIS_PUSH_ENABLED": "false"}
    )
    async with receiving() as receiver, start_axis(settings) as axis:
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        sent = []
        for _ in range(5):
            status, answer = await axis.send(sender, axis.edoc(sender, [H41]))
            assert status == 201
            sent.append(answer["id"])
        await asyncio.sleep(0.2)
        assert receiver.hits == []  # nobody pushes inside this server
        worker = start(settings, "worker")
        try:
            for message_id in sent:
                await wait_state(axis, sender, message_id, "acked", within=20)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(10) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    assert sorted(h.headers["X-Axis-Message-Id"] for h in receiver.hits) == sorted(sent)


def test_axis_worker_refuses_nonsense_timing(settings: Settings) -> None:
    """A retry cap below the first retry is a configuration error, said before anything runs."""
    timing = ["--push-retry-base", "60", "--push-retry-cap", "5"]
    proc = subprocess.run(
        [sys.executable, "-m", "axis", "worker", "--data", str(settings.data), *timing],
        cwd=ROOT,
        env={**os.environ, **ENV},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert b"configuration" in proc.stderr and b"base=60" in proc.stderr
