"""Two ``axis serve`` processes on one PostgreSQL: one service, whichever node a client reaches.

Each node is a real subprocess (``python -m axis serve --store postgresql://…``) with its own
data directory (the same axis key in both, as operators copy it), on a schema of its own in
the test database. The test process prepares the registry through a store of its own and then
talks to the nodes over HTTP only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from axis import audit, bootstrap, tokens
from axis.config import Settings
from axis.registry import Certificate
from axis.store import open_store
from axis.store.ops import AxisStore
from tests.api.test_crash import free_port, wait_ready
from tests.api.test_push import SECRET, Receiver, receiving
from tests.store.conftest import drop_schema, fresh_schema, require_postgres, schema_url
from tests.support import packets, pki, signers
from tests.support.datadir import keyed_settings
from tests.support.rawsql import raw_sql

G22 = "000.00.00.G22"  # sends
H41 = "000.00.00.H41"  # receives by push (and may pull)
H42 = "000.00.00.H42"  # receives by pulling its inbox
ROOT = Path(__file__).resolve().parents[2]
# pushes in flight when a node dies are due again on the other node a second later
ENV = {
    "AXIS_PUSH_LEASE": "0.5",
    "AXIS_PUSH_TIMEOUT": "0.5",
    "AXIS_PUSH_RETRY_BASE": "0.05",
    "AXIS_PUSH_RETRY_CAP": "0.2",
    "AXIS_PUSH_BREAKER_THRESHOLD": "100",
    "AXIS_LOG_LEVEL": "warning",
    # both nodes sign the chain head all the time: their checkpoints race, and must agree
    "AXIS_AUDIT_CHECKPOINT_INTERVAL": "0.2",
}


@dataclass
class Node:
    url: str
    proc: subprocess.Popen[bytes]


@dataclass
class Cluster:
    store: AxisStore  # the test's own view of the shared engine
    nodes: list[Node]
    ident: pki.Identity
    tokens: dict[str, str]
    session: aiohttp.ClientSession
    receiver: Receiver
    axis_cert: bytes

    def auth(self, organ_id: str, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[organ_id]}", **more}

    def edoc(self, n: int) -> bytes:
        xml = packets.edoc_xml(G22, [H41, H42], document_id=f"{G22},2026/11/23,{n}/NODES")
        return signers.sign(xml, self.ident.key_pem, self.ident.cert_pem)

    async def send(self, node: Node, body: bytes) -> tuple[int, Any]:
        headers = self.auth(G22, **{"Content-Type": "application/xml"})
        async with self.session.post(f"{node.url}/v1/edocs", data=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def get(self, node: Node, organ_id: str, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{node.url}{path}", headers=self.auth(organ_id)) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.read()


def node_settings(data: Path, url: str, key_pair: tuple[bytes, bytes]) -> Settings:
    return keyed_settings(data, key_pair, ENV, store=url)


async def prepare(
    settings: Settings, ident: pki.Identity, endpoint: str
) -> tuple[AxisStore, dict[str, str]]:
    """Initialise the schema; G22 pinned to ``ident``, H41 pushed to ``endpoint``; tokens."""
    await bootstrap.initialize(settings)
    store = open_store(settings)
    await store.open()
    registry = await store.registry()
    g22, h41 = registry.get(G22), registry.get(H41)
    assert g22 is not None and h41 is not None
    cert = Certificate.from_pem(ident.cert_pem)
    await store.put_agency(replace(g22, certificates=(cert,)), actor="test")
    await store.put_agency(replace(h41, endpoint=endpoint, push_secret=SECRET), actor="test")
    issued = {}
    for organ_id in (G22, H41, H42):
        token_id, token, token_hash = tokens.generate()
        await store.issue_token(token_id, token_hash, "agency", organ_id, actor="test")
        issued[organ_id] = token
    return store, issued


def serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "axis",
            "serve",
            "--store",
            settings.store,
            "--data",
            str(settings.data),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
async def cluster(tmp_path: Path, axis_key_pair: tuple[bytes, bytes]) -> AsyncIterator[Cluster]:
    await require_postgres()
    schema = fresh_schema()
    url = schema_url(schema)
    ident = pki.identity("rsa2048", common_name="G22 multinode signer", slot=7)
    store = None
    procs: list[subprocess.Popen[bytes]] = []

    async def slow(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        await asyncio.sleep(0.02)  # so that pushes are in flight when a node dies
        return web.Response(status=200)

    try:
        async with receiving(slow) as receiver, aiohttp.ClientSession() as session:
            settings = [node_settings(tmp_path / name, url, axis_key_pair) for name in ("a", "b")]
            store, issued = await prepare(settings[0], ident, receiver.url)
            nodes = []
            for node in settings:
                port = free_port()
                procs.append(serve(node, port))
                nodes.append(Node(f"http://127.0.0.1:{port}", procs[-1]))
            for node in nodes:
                await wait_ready(session, node.url, node.proc)
            yield Cluster(store, nodes, ident, issued, session, receiver, axis_key_pair[1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if store is not None:
            await store.close()
        await drop_schema(schema)


async def verify_chain(cluster: Cluster) -> list[audit.StoredEvent]:
    """The whole audit log, checked by the store (chain and checkpoints) and recomputed here
    link by link from the genesis."""
    verdict = await cluster.store.verify_audit([cluster.axis_cert])
    assert verdict.ok, verdict.reason
    assert verdict.checkpoints >= 1  # signed by the nodes while they ran
    rows = raw_sql(cluster.store).execute(
        "SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"
        " FROM audit_events ORDER BY seq"
    )
    events = [audit.StoredEvent(*row) for row in rows]
    prev = audit.GENESIS
    for event in events:
        assert audit.expected_hash(prev, event) == event.hash, event.seq
        prev = event.hash
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.at for e in events] == sorted(e.at for e in events)
    return events


@pytest.mark.slow
async def test_sent_through_one_node_received_through_the_other(cluster: Cluster) -> None:
    """A long-poll on node B is answered when node A accepts; B serves the exact bytes."""
    a, b = cluster.nodes
    poll = asyncio.create_task(cluster.get(b, H42, "/v1/inbox?wait=20"))
    await asyncio.sleep(0.3)  # B's long-poll is waiting on an empty inbox
    assert not poll.done()
    body = cluster.edoc(1)
    status, sent = await cluster.send(a, body)
    assert status == 201, sent
    status, page = await asyncio.wait_for(poll, 10)
    assert status == 200 and [m["id"] for m in page["items"]] == [sent["id"]]
    status, fetched = await cluster.get(b, H42, f"/v1/inbox/{sent['id']}")
    assert (status, fetched) == (200, body)
    async with cluster.session.post(
        f"{b.url}/v1/inbox/{sent['id']}/ack", json={"result": "done"}, headers=cluster.auth(H42)
    ) as r:
        assert r.status == 200
    # the same bytes again through the other node: the original answer, nothing stored twice
    status, again = await cluster.send(b, body)
    assert (status, again["id"]) == (200, sent["id"])
    status, record = await cluster.get(a, G22, f"/v1/messages/{sent['id']}")
    states = {r["organ_id"]: r["state"] for r in record["recipients"]}
    assert states[H42] == "acked"
    await verify_chain(cluster)


@pytest.mark.slow
async def test_a_node_killed_under_load_loses_nothing_and_duplicates_nothing(
    cluster: Cluster,
) -> None:
    """SIGKILL one node mid-load: every 201 is in each inbox exactly once, every message is
    pushed at least once (the dead node's pushes by the other), and the audit chain holds."""
    a, b = cluster.nodes
    docs = await asyncio.to_thread(lambda: [cluster.edoc(n) for n in range(100, 220)])
    accepted: dict[int, str] = {}  # doc index -> message id answered 201 or 200
    unknown: list[int] = []  # sent to the node that died, no answer
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(len(docs)):
        queue.put_nowait(n)
    killed = asyncio.Event()

    async def sender(lane: int) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            node = a if (lane % 2 == 0 and not killed.is_set()) else b
            try:
                status, answer = await cluster.send(node, docs[n])
            except aiohttp.ClientError:
                unknown.append(n)
                continue
            if status == 503:
                unknown.append(n)
                continue
            assert status in (200, 201), answer
            accepted[n] = answer["id"]
            if len(accepted) == 40 and not killed.is_set():
                killed.set()
                a.proc.send_signal(signal.SIGKILL)

    await asyncio.gather(*(sender(lane) for lane in range(8)))
    assert killed.is_set() and a.proc.wait(10) == -signal.SIGKILL
    # a client that got no answer sends again, to the node still up: a package the dead node
    # stored is recognised (200, its id), one it did not is stored now (201)
    for n in unknown:
        status, answer = await cluster.send(b, docs[n])
        assert status in (200, 201), answer
        accepted[n] = answer["id"]
    assert len(accepted) == len(docs)
    expected = set(accepted.values())
    assert len(expected) == len(docs)

    status, page = await cluster.get(b, H42, "/v1/inbox?limit=1000")
    listed = Counter(item["id"] for item in page["items"])
    assert set(listed) == expected and set(listed.values()) == {1}

    async with asyncio.timeout(30):  # the other node pushes what the dead one held
        while True:  # until every push is acknowledged, by one node or the other
            status, page = await cluster.get(b, H41, "/v1/inbox?limit=1000")
            if not page["items"]:
                break
            await asyncio.sleep(0.1)
    assert expected <= {h.headers["X-Axis-Message-Id"] for h in cluster.receiver.hits}
    for message_id in sorted(expected)[:10]:
        status, record = await cluster.get(b, G22, f"/v1/messages/{message_id}")
        assert {r["organ_id"]: r["state"] for r in record["recipients"]}[H41] == "acked"

    events = await verify_chain(cluster)
    received = Counter(e.message_id for e in events if e.type == "message_received")
    assert set(received) == expected and set(received.values()) == {1}
    queued = Counter((e.message_id, e.to_id) for e in events if e.type == "delivery_queued")
    assert set(queued.values()) == {1} and len(queued) == 2 * len(expected)
    deliveries = raw_sql(cluster.store).execute(
        "SELECT count(*) FROM deliveries WHERE delivered_to = ?", (H41,)
    )
    assert deliveries.fetchone() == (len(expected),)
