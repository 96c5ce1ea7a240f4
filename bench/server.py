"""A real axis for the benchmark: a data directory prepared in the store, a server subprocess.

The data directory is prepared the way ``tests/api/test_crash.py`` does it: initialised from
the shipped registry, the sender's pinned certificate written into its agency record and
agency tokens issued straight into the store, so no admin API call sits between the benchmark
and the figures; connected systems (the VDXP endpoints' callers) are registered the way
``axis system add`` does it, their secrets sealed under the data directory's ``systems.key``.
The server is ``python -m axis serve`` in its own process (or processes, with ``--workers``),
found again through ``/proc`` to read its CPU time and peak RSS; with a ``driver`` other than
``sqlite3`` it is ``python -m bench.variant_server``, the same server over a bench-only SQLite
backend (``bench.aiosqlite_backend``).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from axis import bootstrap, secretbox, tokens
from axis.config import Settings, build_settings
from axis.registry import Certificate
from axis.store import open_store
from axis.systems import described

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def settings_for(data: Path) -> Settings:
    """The server's settings as it will build them, so both sides agree on paths."""
    return build_settings({"data": str(data)}, env={})


async def _prepare(
    settings: Settings, sender: str, cert_pem: bytes, agencies: list[str]
) -> dict[str, str]:
    await bootstrap.initialize(settings)
    store = open_store(settings)
    await store.open()
    try:
        registry = await store.registry()
        agency = registry.get(sender)
        if agency is None:
            raise RuntimeError(f"{sender} is not in the shipped registry")
        await store.put_agency(
            replace(agency, certificates=(Certificate.from_pem(cert_pem),)), actor="bench"
        )
        out = {}
        for organ_id in agencies:
            token_id, token, token_hash = tokens.generate()
            await store.issue_token(token_id, token_hash, "agency", organ_id, actor="bench")
            out[organ_id] = token
        return out
    finally:
        await store.close()


def prepare(data: Path, sender: str, cert_pem: bytes, agencies: list[str]) -> dict[str, str]:
    """Initialise ``data``, pin ``cert_pem`` for ``sender``; a token for each of ``agencies``."""
    return asyncio.run(_prepare(settings_for(data), sender, cert_pem, agencies))


async def _register(settings: Settings, systems: dict[str, list[str]]) -> dict[str, str]:
    box = bootstrap.secret_box(settings)
    store = open_store(settings)
    await store.open()
    try:
        out = {}
        for system_id, agencies in systems.items():
            system = described(system_id, {"name": f"bench {system_id}", "agencies": agencies})
            secret = secretbox.new_secret()
            await store.add_system(system, box.seal(secret, system.id), actor="bench")
            out[system_id] = secret
        return out
    finally:
        await store.close()


def register_systems(data: Path, systems: dict[str, list[str]]) -> dict[str, str]:
    """Register connected systems (id -> the codes it serves) in the prepared ``data``, with
    the default signature policy (``required``); each one's secret, as ``axis system add``
    prints it."""
    return asyncio.run(_register(settings_for(data), systems))


# --- /proc -----------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: split after it
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def status_kb(pid: int, name: str) -> int:
    """A ``kB`` figure from ``/proc/PID/status`` (``VmHWM``, ``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


# --- the server process ----------------------------------------------------------------------


@dataclass
class Server:
    data: Path
    port: int
    workers: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def serving_pids(self) -> list[int]:
        """The processes that answer requests: the forked workers, or the one process."""
        if self.workers == 1:
            return [self.proc.pid]
        return sorted(_children(self.proc.pid))

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in {self.proc.pid, *self.serving_pids()})

    def peak_rss_kb(self) -> dict[int, int]:
        return {pid: status_kb(pid, "VmHWM") for pid in self.serving_pids()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(
    data: Path,
    workers: int,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    *,
    driver: str = "sqlite3",
) -> Server:
    """Start ``python -m axis serve`` on a free port and wait until it answers ``/healthz``
    (``driver``: the shipped SQLite backend, or a bench variant, see the module docstring)."""
    port = free_port()
    env = {**os.environ, "AXIS_LOG_LEVEL": "warning", **(extra_env or {})}
    launcher = ["-m", "axis"]
    if driver != "sqlite3":
        launcher = ["-m", "bench.variant_server", "--sqlite-driver", driver]
    command = [sys.executable, *launcher, "serve", "--data", str(data), "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    server = Server(data, port, workers, proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the server exited with {proc.returncode}; its log: {log_path}\n"
                + log_path.read_text(errors="replace")[-2000:]
            )
        try:
            status, _ = request(server, "GET", "/healthz", timeout=2)
            if status == 200 and len(server.serving_pids()) >= workers:
                _check_driver(server, driver)
                return server
        except OSError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"the server did not come up in 60 s; its log: {log_path}")


def _check_driver(server: Server, driver: str) -> None:
    """A variant must be what serves (``/readyz`` shows the store's ``describe()``)."""
    if driver == "sqlite3":
        return
    status, ready = request(server, "GET", "/readyz", timeout=10)
    shown = ready.get("store", {}).get("bench_driver") if isinstance(ready, dict) else None
    if shown != driver:
        server.stop()
        raise RuntimeError(f"asked for the {driver} driver, /readyz answered {status}: {ready}")


def request(
    server: Server,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    """One plain request for the untimed parts (setup, the big package): JSON decoded."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if content_type:
        headers["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    ctype = resp.getheader("Content-Type") or ""
    return resp.status, orjson.loads(raw) if "json" in ctype and raw else raw


class RssSampler:
    """Polls the serving processes' ``RssAnon`` and ``RssFile`` while a request runs.

    ``VmHWM`` is the figure the target is about, but it adds file-backed pages (a mapped
    spool file, shared libraries) to the process's own allocations; the sampled anonymous
    peak says how much of the growth is heap.
    """

    def __init__(self, pids: list[int], interval: float = 0.002) -> None:
        import threading

        self.pids = pids
        self.interval = interval
        self.peak: dict[int, dict[str, int]] = {
            pid: {"RssAnon": 0, "RssFile": 0, "VmRSS": 0} for pid in pids
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    text = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    name = line.split(":", 1)[0]
                    if name in ("RssAnon", "RssFile", "VmRSS"):
                        kb = int(line.split()[1])
                        self.peak[pid][name] = max(self.peak[pid][name], kb)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
