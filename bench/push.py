"""``python -m bench.push``: how fast the push worker delivers, and how fast it catches up.

Two figures, on a fresh data directory (SQLite on the same disk as a real one):

1. **throughput**: N deliveries (8 KB packages) are waiting, the receiver is up; the worker
   starts and the clock runs until every delivery is acknowledged: pushes per second.
2. **backlog drain**: the receiver is down (connection refused) while N packages arrive, so
   the worker's circuit opens and it only probes; then the receiver comes back. Reported:
   how long until the first push gets through (the probe's wait) and until all N are acked.

The worker runs in this process exactly as ``axis worker`` runs it (uvloop, one lane per
endpoint, group-committed records and audit events); the receiver runs in a subprocess (the
second core), answers 200 and checks every HMAC. Messages are put into the store directly:
intake has its own benchmark (``python -m bench``), this one measures pushing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from axis import ids, registry, timeutil
from axis.config import Settings, build_settings
from axis.model import NewMessage
from axis.push import PushWorker
from axis.routing import Route
from axis.store import open_store
from axis.store.protocol import Store
from tests.support.rawsql import raw_sql

SENDER = "000.00.00.G22"
RECIPIENT = "000.00.00.H41"
SECRET = "bench-secret"
HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Result:
    deliveries: int
    seconds: float
    first_ack_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------- the receiver


def serve_receiver(port: int) -> None:
    """An agency's document system: verify the HMAC, remember the id, answer 200."""
    import uvloop
    from aiohttp import web

    seen: set[str] = set()
    key = SECRET.encode()

    async def push(request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers["X-Axis-Timestamp"]
        mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers["X-Axis-Signature"], f"sha256={mac}"):
            return web.Response(status=401, text="bad signature")
        seen.add(request.headers["X-Axis-Message-Id"])  # receivers dedupe on the id
        return web.Response(status=200)

    async def count(request: web.Request) -> web.Response:
        return web.Response(text=str(len(seen)))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/push", push)
    app.router.add_get("/count", count)
    uvloop.install()
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


def start_receiver(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.push", "--receiver", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("the receiver did not start")


def stop_receiver(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# ------------------------------------------------------------------------------- the axis side


def package(i: int, size: int) -> bytes:
    head = f"<edXML><n>{i}</n><pad>".encode()
    tail = b"</pad></edXML>"
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


async def fill(store: Store, count: int, size: int, tag: str) -> None:
    """``count`` messages from SENDER to RECIPIENT, accepted in group commits."""

    async def one(i: int) -> None:
        body = package(i, size)
        mid = ids.new_id("msg")
        await store.accept(
            NewMessage(
                id=mid,
                kind="edoc",
                from_id=SENDER,
                document_id=f"{SENDER},2026/11/23,{i}/{tag}",
                business_type=0,
                status_code=None,
                sha256=hashlib.sha256(body + tag.encode()).hexdigest(),
                size=len(body),
                received_at=timeutil.fmt(timeutil.now()),
                body=body,
                body_file=None,
                routes=(Route(RECIPIENT, RECIPIENT),),
                delivery_ids={RECIPIENT: ids.new_id("dlv")},
                actor=f"agency:{SENDER}",
            )
        )

    for start in range(0, count, 500):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 500))))


async def wait_drained(store: Store, started: float, poll: float = 0.02) -> tuple[float, float]:
    """Seconds from ``started`` until the first delivery and until the last was acked."""
    first: float | None = None
    total = await pending(store)
    while True:
        left = await pending(store)
        now = time.monotonic()
        if first is None and left < total:
            first = now - started
        if left == 0:
            return (first if first is not None else now - started), now - started
        await asyncio.sleep(poll)


async def pending(store: Store) -> int:
    """Deliveries to RECIPIENT not yet acknowledged (an indexed count, cheap to poll)."""
    conn = raw_sql(store)
    return int(
        conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE delivered_to = ? AND open = 1", (RECIPIENT,)
        ).fetchone()[0]
    )


async def open_data(data: Path, endpoint: str, env: dict[str, str]) -> tuple[Settings, Store]:
    settings = build_settings({"data": str(data)}, env=env)
    store = open_store(settings)
    await store.open()
    await store.initialize(registry.load_file(settings.shipped_agencies))
    agency = (await store.registry()).get(RECIPIENT)
    assert agency is not None
    await store.put_agency(replace(agency, endpoint=endpoint, push_secret=SECRET), actor="bench")
    return settings, store


async def throughput(root: Path, count: int, size: int, env: dict[str, str]) -> Result:
    port = free_port()
    receiver = start_receiver(port)
    settings, store = await open_data(root / "throughput", f"http://{HOST}:{port}/push", env)
    try:
        await fill(store, count, size, "TPUT")
        worker = PushWorker(store, settings)
        started = time.monotonic()
        await worker.start()
        _, seconds = await wait_drained(store, started)
        await worker.stop()
        return Result(count, seconds)
    finally:
        await store.close()
        stop_receiver(receiver)


async def backlog(root: Path, count: int, size: int, env: dict[str, str]) -> Result:
    port = free_port()  # nobody listens yet: connection refused
    settings, store = await open_data(root / "backlog", f"http://{HOST}:{port}/push", env)
    receiver: subprocess.Popen[bytes] | None = None
    try:
        worker = PushWorker(store, settings)
        await worker.start()
        await fill(store, count, size, "BACKLOG")  # arrives while the endpoint is down
        await asyncio.sleep(max(2.0, 4 * settings.push_retry_base))  # the circuit opens
        receiver = await asyncio.to_thread(start_receiver, port)
        started = time.monotonic()
        first, seconds = await wait_drained(store, started)
        await worker.stop()
        return Result(count, seconds, first)
    finally:
        await store.close()
        if receiver is not None:
            stop_receiver(receiver)


async def run(args: argparse.Namespace) -> dict[str, object]:
    env = {
        "AXIS_PUSH_RETRY_BASE": str(args.retry_base),
        "AXIS_PUSH_RETRY_CAP": str(args.retry_cap),
        "AXIS_PUSH_CONCURRENCY": str(args.concurrency),
        "AXIS_LOG_LEVEL": "warning",
    }
    root = Path(tempfile.mkdtemp(prefix="axis-bench-push-", dir=args.tmp))
    try:
        tput = await throughput(root, args.count, args.size, env)
        drain = await backlog(root, args.count, args.size, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "deliveries": args.count,
        "package_bytes": args.size,
        "concurrency_per_endpoint": args.concurrency,
        "retry_base_s": args.retry_base,
        "retry_cap_s": args.retry_cap,
        "pushes_per_s": round(tput.rate, 1),
        "throughput_seconds": round(tput.seconds, 3),
        "backlog_first_ack_s": round(drain.first_ack_seconds or 0.0, 3),
        "backlog_drain_s": round(drain.seconds, 3),
        "backlog_pushes_per_s": round(drain.rate, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="deliveries (10000)")
    parser.add_argument("--quick", action="store_true", help="1,000 deliveries: a smoke check")
    parser.add_argument("--size", type=int, default=8192, help="package bytes (8192)")
    parser.add_argument("--concurrency", type=int, default=4, help="AXIS_PUSH_CONCURRENCY (4)")
    parser.add_argument(
        "--retry-base", type=float, default=0.5, help="AXIS_PUSH_RETRY_BASE for the outage (0.5)"
    )
    parser.add_argument(
        "--retry-cap", type=float, default=2.0, help="AXIS_PUSH_RETRY_CAP for the outage (2)"
    )
    parser.add_argument("--tmp", default=None, help="where the data directories go")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.count = min(args.count, 1_000)
    if args.receiver:
        serve_receiver(args.receiver)
        return 0
    import uvloop

    from axis import log

    log.configure("warning", json=True)
    figures = uvloop.run(run(args))
    if args.json:
        print(orjson.dumps(figures).decode())
        return 0
    print(f"push benchmark, pid {os.getpid()}, {os.cpu_count()} cores")
    print(
        f"  throughput: {figures['pushes_per_s']:>8} pushes/s"
        f"  ({args.count} x {args.size} B, {args.concurrency} in flight, target >= 2000/s)"
    )
    print(
        f"  backlog:    {args.count} waiting while the receiver was down; after it came back"
        f" the first push got through in {figures['backlog_first_ack_s']} s (the probe's"
        f" wait, at most the {args.retry_cap} s cap) and all were acked in"
        f" {figures['backlog_drain_s']} s"
    )
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
