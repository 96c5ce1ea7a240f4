"""``python -m bench.pg``: intake on PostgreSQL with one node, then two, and their ratio.

Each run gets a fresh schema in the benchmark database (``AXIS_BENCH_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards, and fresh nodes: ``python
-m axis serve --store …`` processes, each on its own port with its own data directory. The
load comes from a separate process (spawned, pre-signed ~8 KB packages, the same minimal
client as ``bench.load``) that spreads its connections evenly over the nodes, as a layer-4
balancer would, and times only the load. It reports its own CPU time, as do the nodes and the
PostgreSQL server processes over the same window, so the report says where the cores went:
on a 2-core machine the generator, the nodes and the engine all share them.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from axis import bootstrap, tokens
from axis.config import build_settings
from axis.registry import Certificate
from axis.store import open_store
from bench import corpus, load, machine, server
from bench.client import connect
from bench.signer import FastSigner

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _log(message: str) -> None:
    print(f"bench.pg: {message}", file=sys.stderr, flush=True)


# --- the engine ------------------------------------------------------------------------------


def store_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


async def _drop(base: str, schema: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def engine_cpu_seconds() -> float:
    """CPU time of every PostgreSQL server process on this machine (all backends)."""
    total = 0.0
    for pid, (cmd, seconds) in machine.process_times().items():
        del pid
        if cmd.startswith("postgres"):
            total += seconds
    return total


async def _prepare(url: str, data: Path, cert_pem: bytes) -> dict[str, str]:
    settings = build_settings({"data": data, "store": url}, env={})
    await bootstrap.initialize(settings)
    store = open_store(settings)
    await store.open()
    try:
        agency = (await store.registry()).get(corpus.SENDER)
        assert agency is not None
        cert = Certificate.from_pem(cert_pem)
        await store.put_agency(replace(agency, certificates=(cert,)), actor="bench")
        out = {}
        for organ_id in (corpus.SENDER, corpus.RECIPIENT):
            token_id, token, token_hash = tokens.generate()
            await store.issue_token(token_id, token_hash, "agency", organ_id, actor="bench")
            out[organ_id] = token
        return out
    finally:
        await store.close()


# --- the load: a closed loop over several nodes ----------------------------------------------


async def spread_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """``bench.load.closed_loop``, with the connections dealt round-robin over ``ports``."""
    docs = load.read_docs(Path(spec["docs_file"]))
    ports: list[int] = spec["ports"]
    headers = f"Authorization: Bearer {spec['token']}\r\nContent-Type: application/xml\r\n"
    head = headers.encode()
    conns = [await connect(spec["host"], ports[i % len(ports)]) for i in range(spec["concurrency"])]
    warmup = spec["warmup"]
    for i, doc in enumerate(docs[:warmup]):  # every node pays its lazy start-up here
        await conns[i % len(conns)].request("POST", "/v1/edocs", head, doc)
    ok = 0
    refused: dict[str, int] = {}
    latencies: list[float] = []
    next_doc = warmup
    deadline = 0.0

    async def worker(index: int) -> None:
        nonlocal next_doc, ok
        conn = conns[index]
        while next_doc < len(docs) and time.perf_counter() < deadline:
            doc = docs[next_doc]
            next_doc += 1
            started = time.perf_counter()
            try:
                answer = await conn.request("POST", "/v1/edocs", head, doc)
            except Exception as exc:  # a broken connection ends this worker, not the run
                refused[type(exc).__name__] = refused.get(type(exc).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - started)
            if answer.status == 201:
                ok += 1
            else:
                refused[str(answer.status)] = refused.get(str(answer.status), 0) + 1

    cpu0 = load._cpu()
    start = time.perf_counter()
    deadline = start + spec["duration"]
    await asyncio.gather(*(worker(i) for i in range(len(conns))))
    elapsed = time.perf_counter() - start
    cpu = load._cpu() - cpu0
    for conn in conns:
        conn.close()
    return {
        "ok": ok,
        "refused": refused,
        "elapsed_s": elapsed,
        "rate": ok / elapsed if elapsed else 0.0,
        "generator_cpu_s": cpu,
        "latency": load.summarize(latencies),
        "ran_out": next_doc >= len(docs),
    }


def _child(spec: dict[str, Any], out: Any) -> None:
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            out.send(runner.run(spread_loop(spec)))
    except BaseException as exc:
        out.send({"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        out.close()


def run_load(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, send), name="bench-pg-load")
    proc.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise TimeoutError(f"the load generator gave no answer in {timeout} s")
        result: dict[str, Any] = receive.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if "error" in result:
        raise RuntimeError(f"the load generator failed: {result['error']}")
    return result


# --- one run: n nodes ------------------------------------------------------------------------


def run_nodes(
    nodes: int,
    base: str,
    tmp: Path,
    docs_file: Path,
    identity: corpus.Identity,
    args: argparse.Namespace,
) -> dict[str, Any]:
    schema = f"axis_bench_{secrets.token_hex(4)}"
    url = store_url(base, schema)
    servers: list[server.Server] = []
    previous = os.environ.get("AXIS_STORE")
    try:
        datas = [tmp / f"n{nodes}-{i}" for i in range(nodes)]
        tokens_ = asyncio.run(_prepare(url, datas[0], identity.cert_pem))
        for data in datas[1:]:  # the same axis key on every node, as operators copy it
            data.mkdir(parents=True)
            for name in ("axis-key.pem", "axis.pem"):
                shutil.copy2(datas[0] / name, data / name)
        os.environ["AXIS_STORE"] = url  # bench.server.start passes the environment on
        for i, data in enumerate(datas):
            servers.append(server.start(data, 1, tmp / f"n{nodes}-{i}.log"))
        spec = {
            "host": server.HOST,
            "ports": [s.port for s in servers],
            "token": tokens_[corpus.SENDER],
            "docs_file": str(docs_file),
            "concurrency": args.connections,
            "duration": args.seconds,
            "warmup": 50 * nodes,
        }
        _log(f"{nodes} node(s): closed loop, {args.connections} connections, {args.seconds} s")
        busy0 = machine.busy_seconds()
        node0 = [s.cpu_seconds() for s in servers]
        engine0 = engine_cpu_seconds()
        wall0 = time.perf_counter()
        result = run_load(spec, args.seconds + 120)
        wall = time.perf_counter() - wall0
        elapsed = result["elapsed_s"]
        result["nodes"] = nodes
        result["node_cores"] = [
            (s.cpu_seconds() - c0) / elapsed for s, c0 in zip(servers, node0, strict=True)
        ]
        result["engine_cores"] = (engine_cpu_seconds() - engine0) / elapsed
        result["generator_cores"] = result["generator_cpu_s"] / elapsed
        result["machine_cores"] = (machine.busy_seconds() - busy0) / wall
        return result
    finally:
        for srv in servers:
            srv.stop()
        if previous is None:
            os.environ.pop("AXIS_STORE", None)
        else:
            os.environ["AXIS_STORE"] = previous
        asyncio.run(_drop(base, schema))


def render(runs: list[dict[str, Any]]) -> str:
    lines = [
        "PostgreSQL intake, closed loop (~8 KB packages, one recipient)",
        "",
        "nodes  docs/s   p50 ms  p99 ms  node cores      engine  generator  machine  refused",
    ]
    for run in runs:
        lat = run["latency"]
        lines.append(
            f"{run['nodes']:>5}  {run['rate']:>6.0f}  {lat['p50_ms']:>7.1f}  {lat['p99_ms']:>6.1f}"
            f"  {' + '.join(f'{c:.2f}' for c in run['node_cores']):<14}"
            f"  {run['engine_cores']:>6.2f}  {run['generator_cores']:>9.2f}"
            f"  {run['machine_cores']:>7.2f}  {run['refused'] or '-'}"
        )
    if len(runs) == 2 and runs[0]["rate"]:
        lines += ["", f"ratio two nodes / one node: {runs[1]['rate'] / runs[0]['rate']:.2f}"]
    lines.append(
        "(cores: CPU seconds per second of the timed window; 'engine' is every PostgreSQL"
        " process, 'machine' everything, this machine has "
        f"{os.cpu_count()} cores)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.pg", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="each run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="default 64")
    parser.add_argument("--quick", action="store_true", help="3 s runs: a smoke check")
    parser.add_argument(
        "--url", default=os.environ.get("AXIS_BENCH_POSTGRES", DEFAULT_URL), help="the engine"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 3.0
    tmp = Path(tempfile.mkdtemp(prefix="axis-bench-pg-"))
    try:
        identity = corpus.sender_identity()
        tmpl = corpus.template(identity)
        signer = FastSigner(tmpl)
        one = (corpus.RECIPIENT,)
        small = corpus.attachment_for(8192, one, signer)
        count = int(args.seconds * 3000) + 200  # more than two nodes can take in the time
        runs = []
        for nodes in (1, 2):
            started = time.perf_counter()
            spec = corpus.Spec(one, small, f"pg{nodes}-{secrets.token_hex(3)}")
            docs = corpus.build(tmpl, spec, count)
            corpus.check_one(docs[0], identity)
            docs_file = tmp / f"docs-{nodes}.bin"
            load.write_docs(docs_file, docs)
            del docs
            _log(f"signed {count} packages in {time.perf_counter() - started:.1f} s")
            runs.append(run_nodes(nodes, args.url, tmp, docs_file, identity, args))
        print(render(runs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
