"""Counters for ``/metrics`` (Prometheus text format 0.0.4), kept in process memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

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
    "axis_store_commits_total": "Store commits since start; each is one fsync (group commit).",
    "axis_store_writes_total": "Write operations carried by those commits since start.",
}


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += amount

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
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
        for name, reading in readings:
            header(name, "counter" if name.endswith("_total") else "gauge")
            lines.append(f"{name} {reading:g}")
        return "\n".join(lines) + "\n"
