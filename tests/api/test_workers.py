"""``axis serve --workers 2``: two processes on one port and one store, sharing the work."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from axis.config import Settings
from tests.api.test_crash import G22, H41, ROOT, free_port, prepare, wait_ready
from tests.support import packets, pki, signers

SENDS = 40


def _sent_by_process(metrics: str) -> tuple[str, int]:
    """(pid, sends this process answered 201) from one scrape of /metrics."""
    pid = re.search(r'^axis_process_info\{pid="(\d+)"\} 1$', metrics, re.M)
    sent = re.search(
        r'^axis_http_requests_total\{method="POST",route="/v1/edocs",status="201"\} (\d+)$',
        metrics,
        re.M,
    )
    assert pid is not None
    return pid[1], int(sent[1]) if sent else 0


def _start_workers(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "axis", "serve", "--data", str(settings.data),
         "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env={**os.environ, "AXIS_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_two_workers_share_connections_and_the_store(settings: Settings) -> None:
    """Both processes take sends; every 201 is in the inbox once; SIGTERM stops both cleanly."""
    ident = pki.identity("rsa2048", common_name="G22 signer")
    send_token, receive_token = await prepare(settings, ident)
    port = free_port()
    proc = _start_workers(settings, port)
    url = f"http://127.0.0.1:{port}"
    try:
        # a new connection for every request, so the kernel spreads them over both sockets
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, url, proc)
            bodies = [
                signers.sign(
                    packets.edoc_xml(G22, [H41], document_id=f"{G22},2026/11/29,{n}/W"),
                    ident.key_pem,
                    ident.cert_pem,
                )
                for n in range(SENDS)
            ]

            async def send(body: bytes) -> str:
                headers = {
                    "Authorization": f"Bearer {send_token}",
                    "Content-Type": "application/xml",
                }
                async with session.post(f"{url}/v1/edocs", data=body, headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                    return str((await resp.json())["id"])

            sent = await asyncio.gather(*(send(b) for b in bodies))
            by_process: dict[str, int] = {}
            for _ in range(20):
                async with session.get(f"{url}/metrics") as resp:
                    pid, count = _sent_by_process(await resp.text())
                    by_process[pid] = count
            # both took sends (each new connection goes to either: all 40 on one, 2**-39)
            assert len(by_process) == 2 and 0 not in by_process.values(), by_process
            assert sum(by_process.values()) == SENDS
            headers = {"Authorization": f"Bearer {receive_token}"}
            async with session.get(f"{url}/v1/inbox?limit=1000", headers=headers) as resp:
                inbox = [m["id"] for m in (await resp.json())["items"]]
            assert sorted(inbox) == sorted(sent)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0, proc.stderr.read() if proc.stderr else b""


def test_the_port_in_use_is_reported_before_any_worker_starts(tmp_path: Path) -> None:
    """A taken port (another axis included) is one clear line and exit 2, not a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "axis", "serve", "--data", str(tmp_path / "var"),
             "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env={**os.environ, "AXIS_LOG_LEVEL": "warning"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"axis: cannot listen on 127.0.0.1:{port}: Address already in use"
