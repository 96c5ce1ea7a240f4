"""Durability through the SDK's path: a server killed with SIGKILL while systems send through
``/vxp/sendEdoc`` loses nothing it answered with a DocId, and stores nothing twice."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import aiohttp
import pytest

from axis import bootstrap, secretbox
from axis.config import Settings
from axis.store import open_store
from axis.systems import ConnectedSystem
from tests.api.test_crash import G22, H41, free_port, prepare, start_server, wait_ready
from tests.support import packets, pki, signers
from tests.support.vdxp_client import VdxpClient


async def add_system(settings: Settings) -> str:
    """A connected system for G22, registered as an administrator's command would."""
    box = bootstrap.secret_box(settings)
    secret = secretbox.new_secret()
    store = open_store(settings)
    await store.open()
    try:
        system = ConnectedSystem("vxp.crash", "Crash test", (G22,))
        await store.add_system(system, box.seal(secret, system.id), actor="test")
    finally:
        await store.close()
    return secret


@pytest.mark.slow
async def test_sigkill_mid_load_of_send_edoc_keeps_every_doc_id_exactly_once(
    settings: Settings,
) -> None:
    """Every DocId answered before a SIGKILL is delivered exactly once after the restart, and
    a resend through the SDK answers the same DocId."""
    ident = pki.identity("rsa2048", common_name="G22 crash signer", slot=4)
    _, recv_token = await prepare(settings, ident)
    secret = await add_system(settings)
    bodies = [
        signers.sign(
            packets.edoc_xml(G22, [H41], document_id=f"{G22},2026/12/04,{i}/VXPCRASH"),
            ident.key_pem,
            ident.cert_pem,
        )
        for i in range(300)
    ]
    port = free_port()
    proc = start_server(settings, port)
    accepted: dict[int, str] = {}
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"http://127.0.0.1:{port}", proc)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(bodies)):
            queue.put_nowait(i)

        async def sender() -> None:
            # one SDK object per "process", as the software runs it; no retries after the kill
            async with VdxpClient(
                "127.0.0.1", port, systemid="vxp.crash", secret=secret, retries=0
            ) as sdk:
                while not queue.empty():
                    i = queue.get_nowait()
                    try:
                        answer = await sdk.sendEdoc(bodies[i], from_code=G22)
                    except (OSError, EOFError, asyncio.IncompleteReadError):
                        return
                    if answer.get("status") == "OK":
                        accepted[i] = answer["DocId"]

        async def killer() -> None:
            while len(accepted) < 80:  # noqa: ASYNC110 - polling a plain dict is the point
                await asyncio.sleep(0.001)
            proc.send_signal(signal.SIGKILL)

        await asyncio.gather(killer(), *(sender() for _ in range(12)))
        proc.wait(10)
        assert 80 <= len(accepted) < len(bodies), "the kill should land mid-load"

        proc = start_server(settings, port)
        url = f"http://127.0.0.1:{port}"
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
        assert not missing, f"{len(missing)} packages answered with a DocId were lost"
        i, doc_id = next(iter(accepted.items()))
        async with VdxpClient("127.0.0.1", port, systemid="vxp.crash", secret=secret) as sdk:
            again = await sdk.sendEdoc(bodies[i], from_code=G22)
        assert again["status"] == "OK" and again["DocId"] == doc_id
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
