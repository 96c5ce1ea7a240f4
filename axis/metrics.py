"""Counters for ``/metrics`` (Prometheus text format), kept in process memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def render(self, gauges: Iterable[tuple[str, float]] = ()) -> str:
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in sorted(self.counters.items()):
            if name not in seen:
                lines.append(f"# TYPE {name} counter")
                seen.add(name)
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
        for gauge, reading in gauges:
            lines.append(f"# TYPE {gauge} gauge")
            lines.append(f"{gauge} {reading:g}")
        return "\n".join(lines) + "\n"
