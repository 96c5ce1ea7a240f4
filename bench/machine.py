"""What the figures were measured on: without it, a number is not comparable to anything."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _filesystem(path: Path) -> str:
    """The data directory's filesystem: fsync on tmpfs is free, on a disk it is the cost."""
    try:
        out = subprocess.run(
            ["df", "--output=fstype", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[-1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def describe(data_root: Path) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "ram_bytes": _ram_bytes(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "data_fs": _filesystem(data_root),
    }


def busy_seconds() -> float:
    """CPU time the whole machine spent busy so far, all cores, all processes.

    Compared with what the server and the load generator used over the same span, it shows
    how much other processes took: on a shared machine a figure measured while something
    else ran is not the axis's figure.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process's finished (waited-for) children: the generator, the pools."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def others_busy(seconds: float) -> float:
    """Cores kept busy by other processes while this one sleeps: is the machine quiet?"""
    import time

    before = busy_seconds()
    time.sleep(seconds)
    return max(0.0, busy_seconds() - before) / seconds


def process_times() -> dict[int, tuple[str, float]]:
    """CPU seconds of every live process, with a short command line to name it by."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / ticks
        out[int(entry.name)] = (cmd.strip()[:70] or entry.name, seconds)
    return out


def top_others(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    ours: set[int],
    wall: float,
) -> list[tuple[str, float]]:
    """The processes, not ours, that used the most CPU between two snapshots (cores)."""
    used = []
    for pid, (cmd, seconds) in after.items():
        if pid in ours:
            continue
        delta = seconds - before.get(pid, (cmd, 0.0))[1]
        if delta / wall >= 0.05:
            used.append((cmd, delta / wall))
    return sorted(used, key=lambda x: -x[1])[:3]
