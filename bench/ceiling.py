"""The verify-only ceiling: how many packages this machine can parse and check per second.

The intake does more than verify (HTTP, digest, store, audit), so its rate can only approach
this figure; the ratio says how much of the machine's capacity the rest of the intake costs.
One process per core, each running ``edxml.parse`` + ``signing.verify_package`` (exactly the
checks the intake runs) over the same pre-signed packages the intake measurement sends. The
processes load and warm up first, then start together at a barrier and each counts for the
same fixed time, so the sum of their rates is a rate of the machine.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from bench import machine
from bench.load import read_docs


def _verifier(
    docs_file: str, cert_pem: bytes, duration: float, barrier: Any, index: int, out: Any
) -> None:
    from cryptography import x509

    from axis import edxml, signing

    docs = read_docs(Path(docs_file))
    trusted = [x509.load_pem_x509_certificate(cert_pem)]
    now = dt.datetime.now(dt.UTC)

    def check(doc: bytes) -> None:
        parsed = edxml.parse(doc, expect="edoc")
        signing.verify_package(parsed.tree, trusted=trusted, allow_sha1=False, now=now)

    for doc in docs[:20]:  # schemas and keys load lazily: not part of the rate
        check(doc)
    barrier.wait()
    done = 0
    position = index * len(docs) // max(1, os.cpu_count() or 1)
    start = time.perf_counter()
    deadline = start + duration
    while time.perf_counter() < deadline:
        check(docs[position % len(docs)])
        position += 1
        done += 1
    out.put((done, time.perf_counter() - start))


def measure(docs_file: Path, cert_pem: bytes, duration: float, processes: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_verifier,
            args=(str(docs_file), cert_pem, duration, barrier, i, results),
            name=f"bench-verify-{i}",
        )
        for i in range(processes)
    ]
    busy0 = machine.busy_seconds()
    children0 = machine.children_cpu_seconds()
    wall0 = time.perf_counter()
    for p in procs:
        p.start()
    try:
        counts = [results.get(timeout=duration + 120) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    wall = time.perf_counter() - wall0
    other = machine.busy_seconds() - busy0 - (machine.children_cpu_seconds() - children0)
    rate = sum(done / elapsed for done, elapsed in counts)
    return {
        "processes": processes,
        "duration_s": duration,
        "checks": sum(done for done, _ in counts),
        "rate": rate,
        "per_process": [done / elapsed for done, elapsed in counts],
        "other_cores": max(0.0, other) / wall,
    }
