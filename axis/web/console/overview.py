"""The overview: what needs looking at now, on one page.

Documents accepted today (a Vietnam day) and per hour over the last 48 hours (an SVG chart
drawn here, with the figures as a table too), deliveries by state, recipients past their
receipt deadline, dead deliveries, endpoints whose pushes are failing, certificates ending
within 30 days, and the audit chain: its head, the last signed checkpoint, and the events
after it checked against it (the whole chain is verified on the Audit page, on demand).

Endpoints failing are read from the store, not from a push worker: an endpoint is failing
while deliveries to it wait after a failed push (``retrying``), since the oldest such round
started. Each process's push worker keeps its own circuit breaker, which opens after
``AXIS_PUSH_BREAKER_THRESHOLD`` failures in a row; the store's view is the one every process
and node agrees on, whichever of them serves the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from axis import timeutil
from axis.lifecycle import VIETNAM
from axis.web.agencies import DEADLINE
from axis.web.console import i18n
from axis.web.console.auth import page
from axis.web.console.render import Viewer, render
from axis.web.keys import AXIS_CERTIFICATES, REGISTRY, SETTINGS, STORE

HOURS = 48
OVERDUE_DAYS = 7  # recipients are looked for among documents of this many days past deadline
OVERDUE_SHOWN = 20
OVERDUE_COUNTED = 100  # beyond this the count says "100+"
TAIL_EVENTS = 5000  # events after the last checkpoint checked on each visit


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    height: float
    count: int
    label: str  # the hour in Vietnam time, dd/MM HH:00
    tick: str  # shown under the bar at midnight and noon


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    top: int  # the y axis' highest value
    bar_width: float
    base: float  # y of the axis line


def hourly(buckets: dict[str, int], first: datetime) -> Chart:
    """Bars for the ``HOURS`` hours from ``first`` (UTC, on the hour)."""
    width, height, left, bottom, top_pad = 720, 200, 40, 30, 10
    counts = []
    for n in range(HOURS):
        hour = first + timedelta(hours=n)
        counts.append((hour, buckets.get(timeutil.fmt(hour)[:13], 0)))
    most = max((c for _, c in counts), default=0)
    top = max(1, most)
    span = height - bottom - top_pad
    step = (width - left) / HOURS
    bars = []
    for n, (hour, count) in enumerate(counts):
        local = hour.astimezone(VIETNAM)
        h = span * count / top
        tick = local.strftime("%d/%m") if local.hour == 0 else ("12h" if local.hour == 12 else "")
        bars.append(
            Bar(
                x=round(left + n * step + 1, 1),
                y=round(top_pad + span - h, 1),
                height=round(h, 1),
                count=count,
                label=local.strftime("%d/%m %H:00"),
                tick=tick,
            )
        )
    return Chart(bars, width, height, top, round(step - 2, 1), float(top_pad + span))


@page(section="overview")
async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    store = request.app[STORE]
    now = timeutil.now()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    buckets = dict(await store.documents_per_hour(first))
    midnight = now.astimezone(VIETNAM).replace(hour=0, minute=0, second=0, microsecond=0)
    today_key = timeutil.fmt(midnight)[:13]
    today = sum(n for hour, n in buckets.items() if hour >= today_key)
    counts = await store.delivery_counts()
    cutoff = request.app[DEADLINE].cutoff(now)
    overdue = await store.overdue_recipients(
        since=cutoff - timedelta(days=OVERDUE_DAYS), before=cutoff, limit=OVERDUE_COUNTED + 1
    )
    registry = await request.app[REGISTRY].current()
    failing = await store.failing_endpoints(limit=50)
    head = await store.audit_head()
    checkpoint = await store.checkpoint(None)
    certificates = request.app[AXIS_CERTIFICATES]
    tail = await store.verify_tail(certificates, limit=TAIL_EVENTS)
    return render(
        request,
        "overview.html",
        {
            "today": today,
            "chart": hourly(buckets, first),
            "counts": counts,
            "overdue": overdue[:OVERDUE_SHOWN],
            "overdue_count": len(overdue),
            "overdue_capped": len(overdue) > OVERDUE_COUNTED,
            "overdue_days": OVERDUE_DAYS,
            "overdue_cutoff": cutoff,
            "failing": failing,
            "threshold": request.app[SETTINGS].push_breaker_threshold,
            "expiring": registry.expiring(now),
            "registry": registry,
            "head": head,
            "checkpoint": checkpoint,
            "tail": tail,
            "now": now,
            "i18n": i18n,
        },
        viewer=viewer,
        section="overview",
    )
