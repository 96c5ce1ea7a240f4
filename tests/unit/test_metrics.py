"""Prometheus text: counters, gauges and request-duration histograms as scrapers read them."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from axis.metrics import BUCKETS, Metrics

durations = st.lists(st.floats(min_value=0.0, max_value=120.0), max_size=50)


def _buckets(text: str, name: str) -> list[tuple[str, int]]:
    pattern = re.compile(rf'^{name}_bucket\{{.*le="([^"]+)"\}} (\d+)$', re.M)
    return [(le, int(n)) for le, n in pattern.findall(text)]


@given(durations)
def test_histogram_buckets_are_cumulative_and_end_at_the_count(values: list[float]) -> None:
    """Each bucket counts the values at or below its bound; +Inf, _count and _sum agree."""
    metrics = Metrics()
    for value in values:
        metrics.observe("t_seconds", value, route="/r")
    text = metrics.render()
    if not values:
        assert "t_seconds" not in text
        return
    buckets = _buckets(text, "t_seconds")
    assert [le for le, _ in buckets] == [*map(repr, BUCKETS), "+Inf"]
    for (le, n), bound in zip(buckets, [*BUCKETS, float("inf")], strict=True):
        assert n == sum(v <= bound for v in values), le
    assert f't_seconds_count{{route="/r"}} {len(values)}' in text
    total = float(re.search(r'^t_seconds_sum\{route="/r"\} (\S+)$', text, re.M)[1])  # type: ignore[index]
    assert abs(total - sum(values)) < 1e-3


def test_types_follow_the_names() -> None:
    """Counters and *_total readings are counters, other readings gauges, each typed once."""
    metrics = Metrics()
    metrics.inc("axis_errors_total", code="forbidden")
    metrics.inc("axis_errors_total", code="not_found")
    text = metrics.render([("axis_agencies", 158.0), ("axis_store_commits_total", 7.0)])
    assert text.count("# TYPE axis_errors_total counter") == 1
    assert "# TYPE axis_agencies gauge" in text
    assert "# TYPE axis_store_commits_total counter" in text
    assert 'axis_errors_total{code="forbidden"} 1' in text
