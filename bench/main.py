"""Orchestration: prepare, sign, start the server, run each section, print the table.

Sections (numbered as in the brief and the printed table), on one server whose store grows
as a real one's would:

1. intake: closed loop of ~8 KB packages to one recipient; then the same through the SDK
   path (``POST /vxp/sendEdoc`` as VNPT's SDK sends it, other packages of the same shape),
   on the same server right after, and its ratio to the /v1 figure;
2. latency: open loop at a fixed offered rate (1,000/s), latency from the scheduled send
   time; then again at half the measured intake rate, where the server keeps up;
3. verify ceiling: measured once, after signing and before the first section, while the
   server sits idle (``bench.ceiling``);
4. fan-out: packages addressed to every active level-1 code of the shipped registry;
5. fetch+ack: the recipient of sections 1-2 drains its inbox; then, right after, its
   connected system drains the rest through the SDK path (``getReceivedEdocList``, then
   ``getEdoc`` + ``updateStatus done`` per message), and its ratio to the /v1 figure;
6. on a freshly started server (so earlier load does not hide it under the old peak), the
   peak RSS growth of taking one 50 MB package.

Each section is bounded in time and in count and stops by itself. Before each, the server
is let go idle (an overloaded section leaves a queue behind) and, with ``--wait-quiet``, the
machine too; what other processes used during a section is measured and printed, because
on a shared machine a figure taken while something else ran is not the axis's figure.

``--sqlite-driver`` serves every section over a bench-only variant of the SQLite backend
(``bench.aiosqlite_backend``: aiosqlite for the serving reads, or for the writer's statements
too), and ``--compare-sqlite-drivers`` runs the whole set once per driver, one column each,
for issue 14's aiosqlite A/B in one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from bench import ceiling, corpus, load, machine, report, server
from bench.aiosqlite_backend import DRIVERS
from bench.signer import FastSigner, Template

MB = 1_000_000
# packages at the end of the latency file that no section sends: the big-package section's
# fresh server warms up on them
SPARES = 8
# other processes using less than this much CPU count as a quiet machine
QUIET_CORES = 0.15
# the connected systems of the SDK path: one sends as the sender, one receives for the recipient
SDK_SENDER = "bench.sender"
SDK_RECEIVER = "bench.receiver"


@dataclass(frozen=True)
class Profile:
    """How much of everything: the full run, or the quick smoke check."""

    name: str
    package_bytes: int = 8192
    intake_docs: int = 40_000
    intake_seconds: float = 10.0
    intake_connections: int = 64
    rate: float = 1000.0
    rate_seconds: float = 10.0
    fanout_docs: int = 3_000
    fanout_seconds: float = 10.0
    fanout_connections: int = 16
    drain_seconds: float = 10.0
    drain_connections: int = 32
    ceiling_seconds: float = 5.0
    big_bytes: int = 50 * MB
    warmup: int = 100
    drain_timeout: float = 15.0
    quiet_wait: float = 0.0  # --wait-quiet


FULL = Profile("full")
QUICK = Profile(
    "quick",
    intake_docs=1_500,
    intake_seconds=3.0,
    intake_connections=32,
    rate_seconds=2.0,
    fanout_docs=100,
    fanout_seconds=2.0,
    drain_seconds=2.0,
    ceiling_seconds=1.0,
    warmup=20,
    drain_timeout=5.0,
)


@dataclass
class Corpus:
    intake: Path
    latency: Path
    latency_half: Path
    fanout: Path
    sdk_intake: Path
    recipients: list[str]
    intake_size: float
    fanout_size: float
    sdk_intake_size: float


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _mean_size(docs: list[bytes]) -> float:
    return sum(len(d) for d in docs) / len(docs)


def _fanout_recipients(srv: server.Server, token: str) -> list[str]:
    """Every active level-1 code of the directory (the sender excepted), from the API."""
    status, page = server.request(srv, "GET", "/v1/agencies?status=active&limit=1000", token=token)
    if status != 200:
        raise RuntimeError(f"GET /v1/agencies answered {status}: {page!r}")
    return sorted(
        a["organ_id"]
        for a in page["items"]
        if a["parent"] is None and a["organ_id"] != corpus.SENDER
    )


def build_corpus(
    profile: Profile, tmpl: Template, identity: corpus.Identity, recipients: list[str], tmp: Path
) -> Corpus:
    signer = FastSigner(tmpl)
    one = (corpus.RECIPIENT,)
    tag = uuid.uuid4().hex[:8]
    # the same attachment in both: a fan-out package is the ~8 KB one with more To blocks
    small = corpus.attachment_for(profile.package_bytes, one, signer)
    started = time.perf_counter()
    files = {}
    sizes = {}
    p = profile
    plan = {
        "intake": (corpus.Spec(one, small, f"{tag}-i"), profile.intake_docs + profile.warmup),
        "latency": (
            corpus.Spec(one, small, f"{tag}-l"),
            int(profile.rate * profile.rate_seconds) + profile.warmup + SPARES,
        ),
        "latency_half": (corpus.Spec(one, small, f"{tag}-h"), int(p.rate * p.rate_seconds)),
        "fanout": (
            corpus.Spec(tuple(recipients), small, f"{tag}-f"),
            profile.fanout_docs + profile.warmup // 10,
        ),
        # the intake's packages again, with DocumentIds of their own
        "sdk_intake": (corpus.Spec(one, small, f"{tag}-s"), profile.intake_docs + profile.warmup),
    }
    for name, (spec, count) in plan.items():
        docs = corpus.build(tmpl, spec, count)
        corpus.check_one(docs[0], identity)
        corpus.check_one(docs[-1], identity)
        files[name] = tmp / f"{name}.docs"
        load.write_docs(files[name], docs)
        sizes[name] = _mean_size(docs)
    _log(
        f"signed {sum(c for _, c in plan.values())} packages in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return Corpus(
        files["intake"],
        files["latency"],
        files["latency_half"],
        files["fanout"],
        files["sdk_intake"],
        recipients,
        sizes["intake"],
        sizes["fanout"],
        sizes["sdk_intake"],
    )


def _settle(srv: server.Server | None, quiet_wait: float) -> None:
    """Wait until the server is idle (an overloaded section leaves a queue behind it) and,
    for up to ``quiet_wait`` seconds, until other processes leave the machine alone."""
    deadline = time.monotonic() + 30
    while srv is not None and time.monotonic() < deadline:
        before = srv.cpu_seconds()
        time.sleep(0.25)
        if srv.cpu_seconds() - before < 0.025:
            break
    deadline = time.monotonic() + quiet_wait
    while time.monotonic() < deadline:
        if machine.others_busy(1.0) < QUIET_CORES:
            return
        _log("waiting for other processes to leave the machine alone (--wait-quiet)")


def _section(
    srv: server.Server, spec: dict[str, Any], timeout: float, quiet_wait: float
) -> dict[str, Any]:
    """One load run in its own process, with the server's CPU over the same span."""
    _settle(srv, quiet_wait)
    procs0 = machine.process_times()
    cpu0 = srv.cpu_seconds()
    busy0 = machine.busy_seconds()
    children0 = machine.children_cpu_seconds()
    wall0 = time.perf_counter()
    result = load.run_in_process(spec, timeout)
    wall = time.perf_counter() - wall0
    ours = {os.getpid(), srv.proc.pid, *srv.serving_pids()}
    result["top_others"] = machine.top_others(procs0, machine.process_times(), ours, wall)
    result["server_cpu_s"] = srv.cpu_seconds() - cpu0
    result["server_cores"] = result["server_cpu_s"] / result["elapsed_s"]
    # the generator's whole life (start-up included) against the machine's over the same span
    generator = machine.children_cpu_seconds() - children0
    other = machine.busy_seconds() - busy0 - generator - result["server_cpu_s"]
    result["other_cores"] = max(0.0, other) / wall
    return result


def _ratio(sdk: dict[str, Any], v1: dict[str, Any]) -> float | None:
    return sdk["rate"] / v1["rate"] if v1["rate"] else None


def run_label(workers: int, driver: str) -> str:
    """A run's name in file names and in the log: ``w1``, ``w2-aiosqlite-all``."""
    return f"w{workers}" if driver == "sqlite3" else f"w{workers}-{driver}"


def run_sections(
    profile: Profile,
    workers: int,
    tmp: Path,
    identity: corpus.Identity,
    tmpl: Template,
    corpus_: Corpus | None,
    ceiling_: dict[str, Any] | None,
    ceiling_seconds: float,
    driver: str = "sqlite3",
) -> tuple[dict[str, Any], Corpus, dict[str, Any]]:
    label = run_label(workers, driver)
    data = tmp / f"data-{label}"
    log_path = tmp / f"server-{label}.log"
    tokens = server.prepare(
        data, corpus.SENDER, identity.cert_pem, [corpus.SENDER, corpus.RECIPIENT]
    )
    secrets = server.register_systems(
        data, {SDK_SENDER: [corpus.SENDER], SDK_RECEIVER: [corpus.RECIPIENT]}
    )
    send_token, recv_token = tokens[corpus.SENDER], tokens[corpus.RECIPIENT]
    figures: dict[str, Any] = {"workers": workers, "driver": driver}
    who = f"[{workers} worker(s){'' if driver == 'sqlite3' else ', ' + driver}]"
    srv = server.start(data, workers, log_path, driver=driver)
    try:
        if corpus_ is None:
            recipients = _fanout_recipients(srv, send_token)
            corpus_ = build_corpus(profile, tmpl, identity, recipients, tmp)
        if ceiling_ is None:
            _log(f"verify ceiling: {os.cpu_count()} processes for {ceiling_seconds} s")
            _settle(None, profile.quiet_wait)
            ceiling_ = ceiling.measure(
                corpus_.intake, identity.cert_pem, ceiling_seconds, os.cpu_count() or 1
            )
        base = {"host": server.HOST, "port": srv.port, "token": send_token, "path": "/v1/edocs"}
        slack = profile.drain_timeout + 90

        _log(f"{who} intake: closed loop, {profile.intake_connections} conns")
        figures["intake"] = _section(
            srv,
            {
                **base,
                "mode": "closed",
                "docs_file": str(corpus_.intake),
                "concurrency": profile.intake_connections,
                "duration": profile.intake_seconds,
                "warmup": profile.warmup,
            },
            profile.intake_seconds + slack,
            profile.quiet_wait,
        )
        figures["intake"]["package_bytes"] = corpus_.intake_size

        # The same load through the SDK path, on the same server right after: what software
        # on VNPT's SDK gets, beside what /v1 gets.
        _log(f"{who} intake through the SDK: POST /vxp/sendEdoc, closed loop")
        figures["sdk_intake"] = _section(
            srv,
            {
                **base,
                "path": "/vxp/sendEdoc",
                "mode": "sdk_closed",
                "systemid": SDK_SENDER,
                "secret": secrets[SDK_SENDER],
                "from": corpus.SENDER,
                "docs_file": str(corpus_.sdk_intake),
                "concurrency": profile.intake_connections,
                "duration": profile.intake_seconds,
                "warmup": profile.warmup,
            },
            profile.intake_seconds + slack,
            profile.quiet_wait,
        )
        figures["sdk_intake"]["package_bytes"] = corpus_.sdk_intake_size
        figures["sdk_intake"]["ratio"] = _ratio(figures["sdk_intake"], figures["intake"])
    finally:
        srv.stop()

    # The same intake on a twin server that appends no audit events (AXIS_AUDIT_EVENTS=false,
    # a benchmark-only switch): what the audit log costs, measured in the same run.
    quiet = tmp / f"data-{label}-noaudit"
    quiet_tokens = server.prepare(
        quiet, corpus.SENDER, identity.cert_pem, [corpus.SENDER, corpus.RECIPIENT]
    )
    _log(f"{who} intake without audit events")
    srv = server.start(quiet, workers, log_path, {"AXIS_AUDIT_EVENTS": "false"}, driver=driver)
    try:
        figures["intake_no_audit"] = _section(
            srv,
            {
                **base,
                "port": srv.port,
                "token": quiet_tokens[corpus.SENDER],
                "mode": "closed",
                "docs_file": str(corpus_.intake),
                "concurrency": profile.intake_connections,
                "duration": profile.intake_seconds,
                "warmup": profile.warmup,
            },
            profile.intake_seconds + slack,
            profile.quiet_wait,
        )
    finally:
        srv.stop()

    srv = server.start(data, workers, log_path, driver=driver)
    base = {**base, "port": srv.port}
    try:
        _log(f"{who} latency: open loop at {profile.rate:.0f}/s")
        open_loop = {
            **base,
            "mode": "open",
            "duration": profile.rate_seconds,
            "max_connections": 512,
            # all opened before the clock starts: a connection storm against a full listen
            # backlog would measure SYN retransmits, not the axis
            "initial_connections": 512,
            "drain_timeout": profile.drain_timeout,
        }
        figures["latency"] = _section(
            srv,
            {
                **open_loop,
                "docs_file": str(corpus_.latency),
                "rate": profile.rate,
                "warmup": profile.warmup,
            },
            profile.rate_seconds + slack,
            profile.quiet_wait,
        )
        # At a rate past the server's capacity latency only says "queueing": half the
        # measured intake rate says what a sender sees from a loaded but keeping-up axis.
        half = max(10.0, round(figures["intake"]["rate"] / 2, -1))
        _log(f"{who} latency: open loop at {half:.0f}/s (half the intake)")
        figures["latency_half"] = _section(
            srv,
            {**open_loop, "docs_file": str(corpus_.latency_half), "rate": half},
            profile.rate_seconds + slack,
            profile.quiet_wait,
        )

        _log(f"{who} fan-out to {len(corpus_.recipients)} recipients")
        fan = _section(
            srv,
            {
                **base,
                "mode": "closed",
                "docs_file": str(corpus_.fanout),
                "concurrency": profile.fanout_connections,
                "duration": profile.fanout_seconds,
                "warmup": profile.warmup // 10,
            },
            profile.fanout_seconds + slack,
            profile.quiet_wait,
        )
        fan["recipients"] = len(corpus_.recipients)
        fan["package_bytes"] = corpus_.fanout_size
        fan["deliveries_rate"] = fan["rate"] * len(corpus_.recipients)
        figures["fanout"] = fan

        backlog = sum(
            figures[k]["ok"] + figures[k]["warmup_ok"]
            for k in ("intake", "sdk_intake", "latency", "latency_half")
        )
        if corpus.RECIPIENT in corpus_.recipients:  # the recipient is a level-1 code too
            backlog += fan["ok"] + fan["warmup_ok"]
        _log(f"{who} fetch+ack: {backlog} waiting")
        figures["drain"] = _section(
            srv,
            {
                **base,
                "token": recv_token,
                "mode": "drain",
                "concurrency": profile.drain_connections,
                "duration": profile.drain_seconds,
                "page": 500,
            },
            profile.drain_seconds + slack,
            profile.quiet_wait,
        )
        figures["drain"]["backlog"] = backlog

        # What is left, drained through the SDK path by the recipient's connected system.
        left = backlog - figures["drain"]["ok"]
        _log(f"{who} fetch+ack through the SDK: getEdoc + updateStatus, {left} waiting")
        figures["sdk_drain"] = _section(
            srv,
            {
                **base,
                "mode": "sdk_drain",
                "systemid": SDK_RECEIVER,
                "secret": secrets[SDK_RECEIVER],
                "concurrency": profile.drain_connections,
                "duration": profile.drain_seconds,
            },
            profile.drain_seconds + slack,
            profile.quiet_wait,
        )
        figures["sdk_drain"]["backlog"] = left
        figures["sdk_drain"]["ratio"] = _ratio(figures["sdk_drain"], figures["drain"])
    finally:
        srv.stop()

    _log(f"{who} one {profile.big_bytes / MB:.0f} MB package, fresh server")
    figures["big"] = big_package(
        profile, data, workers, log_path, tmpl, send_token, corpus_, driver
    )
    return figures, corpus_, ceiling_


def big_package(
    profile: Profile,
    data: Path,
    workers: int,
    log_path: Path,
    tmpl: Template,
    token: str,
    corpus_: Corpus,
    driver: str = "sqlite3",
) -> dict[str, Any]:
    """Peak RSS growth of a fresh server for one big package (``VmHWM`` before and after)."""
    doc = corpus.big_package(tmpl, profile.big_bytes)
    spares = load.read_docs(corpus_.latency)[-SPARES:]  # never sent by the latency section
    srv = server.start(data, workers, log_path, driver=driver)
    try:
        for warm in spares[: workers * 4]:  # small packages, so every worker has served one
            server.request(
                srv, "POST", "/v1/edocs", token=token, body=warm, content_type="application/xml"
            )
        pids = srv.serving_pids()
        before = srv.peak_rss_kb()
        anon_before = {pid: server.status_kb(pid, "RssAnon") for pid in pids}
        started = time.perf_counter()
        with server.RssSampler(pids) as sampler:
            status, answer = server.request(
                srv,
                "POST",
                "/v1/edocs",
                token=token,
                body=doc,
                content_type="application/xml",
                timeout=300,
            )
        elapsed = time.perf_counter() - started
        after = srv.peak_rss_kb()
    finally:
        srv.stop()
    growth = max((after[pid] - before[pid]) * 1024 for pid in pids)
    anon = max((sampler.peak[pid]["RssAnon"] - anon_before[pid]) * 1024 for pid in pids)
    return {
        "size": len(doc),
        "status": status,
        "answer": answer if status >= 300 else None,
        "elapsed_s": elapsed,
        "vmhwm_before_kb": before,
        "vmhwm_after_kb": after,
        "sampled_peak_kb": sampler.peak,
        "growth_bytes": growth,
        "growth_ratio": growth / len(doc),
        "anon_growth_bytes": anon,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench", description="Benchmark a real axis server (prints figures; not a test)."
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument(
        "--compare-workers", action="store_true", help="run with 1 and with 2 server processes"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke check")
    parser.add_argument(
        "--sqlite-driver",
        choices=DRIVERS,
        default="sqlite3",
        help="serve over the shipped SQLite backend (sqlite3, default) or a bench-only variant "
        "with aiosqlite for the serving reads (aiosqlite-reads) or for the writer too "
        "(aiosqlite-all); see bench/aiosqlite_backend.py",
    )
    parser.add_argument(
        "--compare-sqlite-drivers",
        action="store_true",
        help=f"run everything once per SQLite driver ({', '.join(DRIVERS)}), a column each",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="where the temporary data directories go (default: the system temp dir); "
        "its filesystem is printed, since fsync cost depends on it",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, data, packages)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each section, wait up to SECONDS for other processes to go quiet "
        "(a shared machine); default 0: don't wait, only report what they used",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = replace(QUICK if args.quick else FULL, quiet_wait=args.wait_quiet)
    worker_counts = [1, 2] if args.compare_workers else [args.workers]
    drivers = list(DRIVERS) if args.compare_sqlite_drivers else [args.sqlite_driver]
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="axis-bench-", dir=args.data_root))
    try:
        host = machine.describe(tmp)
        host["others_before_cores"] = machine.others_busy(1.0)
        identity = corpus.sender_identity()
        tmpl = corpus.template(identity)
        corpus_: Corpus | None = None
        ceiling_: dict[str, Any] | None = None
        runs = []
        for workers in worker_counts:
            for driver in drivers:
                figures, corpus_, ceiling_ = run_sections(
                    profile,
                    workers,
                    tmp,
                    identity,
                    tmpl,
                    corpus_,
                    ceiling_,
                    profile.ceiling_seconds,
                    driver,
                )
                log_path = tmp / f"server-{run_label(workers, driver)}.log"
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                figures["server_log_tail"] = tail
                runs.append(figures)
    finally:
        if args.keep:
            _log(f"kept {tmp} (data directories, server logs, signed packages)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    assert ceiling_ is not None
    result = {
        "profile": asdict(profile),
        "machine": host,
        "ceiling": ceiling_,
        "runs": runs,
        "targets": report.TARGETS,
        "wall_s": time.perf_counter() - started,
    }
    print(report.render(result))
    if args.json:
        args.json.write_bytes(
            orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
    return 0
