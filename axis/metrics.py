"""Counters for ``/metrics`` (Prometheus text format 0.0.4), kept in process memory."""

from __future__ import annotations

import bisect
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# One line of help per series, so an operator reading a scrape knows what each one counts.
HELP = {
    "axis_messages_total": "Packets answered 201 (created) or 200 (an identical resend), by kind.",
    "axis_errors_total": "Requests refused with a problem, by its code.",
    "axis_push_acked_total": "Push deliveries a receiver acknowledged with 2xx.",
    "axis_push_failed_total": "Push attempts that failed (no answer in time, or not 2xx).",
    "axis_push_dead_total": "Deliveries given up after the maximum age (dead letters).",
    "axis_agencies": "Agencies in the registry, every status.",
    "axis_certificates_expiring_30d": "Pinned certificates that end within 30 days.",
    "axis_disk_free_bytes": "Bytes free in the data directory (spooled and kept bodies).",
    "axis_store_commits_total": "Store commits since start; each is one fsync (group commit).",
    "axis_store_writes_total": "Write operations carried by those commits since start.",
    "axis_http_requests_total": "HTTP requests answered, by method, route and status.",
    "axis_client_aborts_total": (
        "Requests whose client hung up before its request was read, by method and route"
        " (a client event: not in axis_http_requests_total)."
    ),
    "axis_http_malformed_total": "Requests aiohttp could not parse, answered 400 and closed.",
    "axis_deliveries": (
        "Deliveries not yet acknowledged, by state, across the store (read at most once a second)."
    ),
    "axis_delivery_oldest_undelivered_seconds": (
        "Age of the oldest delivery still queued or retrying (neither fetched nor pushed);"
        " 0 when there is none."
    ),
    "axis_process_info": "This serving process (with --workers, each scrape meets one of them).",
    "process_cpu_seconds_total": "CPU time this process has used, user and system.",
    "process_resident_memory_bytes": "Resident memory of this process.",
    "process_start_time_seconds": "When this process started, in Unix seconds.",
    "axis_http_request_duration_seconds": (
        "Time from a request's arrival at the handler to its answer, by method and route"
        " (long-polls included: they wait by design)."
    ),
}

# Seconds: from a fast fetch (~1 ms) through an intake under load to a 60 s long-poll.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[tuple[str, Labels]] = Counter()
        self.histograms: dict[tuple[str, Labels], _Histogram] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Count ``value`` (seconds) into the histogram ``name`` with fixed ``BUCKETS``."""
        key = (name, tuple(sorted(labels.items())))
        histogram = self.histograms.get(key)
        if histogram is None:
            histogram = self.histograms[key] = _Histogram()
        histogram.counts[bisect.bisect_left(BUCKETS, value)] += 1
        histogram.total += value

    def render(self, readings: Iterable[tuple[str, float]] = ()) -> str:
        """The exposition text: this process's counters, then ``readings`` taken just now.

        A reading named ``*_total`` is a counter kept elsewhere (the store's), the rest gauges.
        """
        lines: list[str] = []
        seen: set[str] = set()

        def header(name: str, kind: str) -> None:
            if name not in seen:
                seen.add(name)
                if name in HELP:
                    lines.append(f"# HELP {name} {HELP[name]}")
                lines.append(f"# TYPE {name} {kind}")

        for (name, labels), value in sorted(self.counters.items()):
            header(name, "counter")
            lines.append(f"{name}{_labels(labels)} {value}")
        for (name, labels), histogram in sorted(self.histograms.items()):
            header(name, "histogram")
            running = 0
            for bound, count in zip((*map(repr, BUCKETS), "+Inf"), histogram.counts, strict=True):
                running += count
                lines.append(f"{name}_bucket{_labels((*labels, ('le', bound)))} {running}")
            lines.append(f"{name}_sum{_labels(labels)} {histogram.total:.6f}")
            lines.append(f"{name}_count{_labels(labels)} {running}")  # the +Inf bucket
        for series, reading in readings:
            name = series.partition("{")[0]  # a reading may carry its labels: name{k="v"}
            header(name, "counter" if name.endswith("_total") else "gauge")
            lines.append(f"{series} {reading:g}")
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def process_readings() -> list[tuple[str, float]]:
    """The standard ``process_*`` series of this process, and its pid as ``axis_process_info``."""
    times = os.times()
    with open("/proc/self/statm", "rb") as statm:  # Linux: pages resident is the 2nd field
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return [
        (f'axis_process_info{{pid="{os.getpid()}"}}', 1.0),
        ("process_cpu_seconds_total", times.user + times.system),
        ("process_resident_memory_bytes", float(resident)),
        ("process_start_time_seconds", _STARTED),
    ]


_STARTED = time.time()  # close enough: the module is imported as the process starts serving
