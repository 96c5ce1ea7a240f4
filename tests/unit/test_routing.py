"""Routing: addressed codes and the registry give deliveries; closed codes forward."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.errors import RecipientUnavailable, UnknownRecipient
from axis.registry import Agency, Registry
from axis.routing import Route, distinct_recipients, route


def agency(code: str, status: str = "active", successor: str | None = None) -> Agency:
    return Agency(organ_id=code, name=code, kind="provincial", status=status, successor=successor)  # type: ignore[arg-type]


def code(n: int) -> str:
    return f"000.00.00.H{n:02d}"


def test_active_codes_route_to_themselves() -> None:
    """Mail to active agencies is delivered to exactly those agencies, in address order."""
    reg = Registry.of([agency(code(1)), agency(code(2))])
    assert route([code(2), code(1)], reg) == (Route(code(2), code(2)), Route(code(1), code(1)))


def test_closed_code_forwards_along_a_chain() -> None:
    """A closed code whose successor closed too ends at the last active successor."""
    reg = Registry.of(
        [
            agency(code(1), "closed", code(2)),
            agency(code(2), "closed", code(3)),
            agency(code(3)),
        ]
    )
    [r] = route([code(1)], reg)
    assert r == Route(code(1), code(3))
    assert r.forwarded


def test_unknown_and_unavailable_are_told_apart() -> None:
    """An unregistered code is unknown; a suspended or successor-less closed one unavailable."""
    reg = Registry.of([agency(code(1), "suspended"), agency(code(2), "closed")])
    with pytest.raises(UnknownRecipient, match=code(9)):
        route([code(9)], reg)
    with pytest.raises(RecipientUnavailable, match=code(1)):
        route([code(1)], reg)
    with pytest.raises(RecipientUnavailable, match=code(2)):
        route([code(2)], reg)


def test_successor_cycle_is_unavailable_not_a_hang() -> None:
    """A cycle of successors refuses the mail instead of looping."""
    reg = Registry.of([agency(code(1), "closed", code(2)), agency(code(2), "closed", code(1))])
    with pytest.raises(RecipientUnavailable, match="cycle"):
        route([code(1)], reg)


@st.composite
def registries(draw: st.DrawFn) -> Registry:
    n = draw(st.integers(1, 12))
    agencies = []
    for i in range(n):
        status = draw(st.sampled_from(["active", "active", "suspended", "closed"]))
        successor = code(draw(st.integers(0, n - 1))) if status == "closed" else None
        if successor == code(i):
            successor = None
        agencies.append(agency(code(i), status, successor))
    return Registry.of(agencies)


@given(registries(), st.lists(st.integers(0, 14), min_size=1, max_size=6, unique=True))
def test_routing_delivers_only_to_active_agencies_once(reg: Registry, picks: list[int]) -> None:
    """Whatever the registry, a routed package reaches only active agencies, each once."""
    addressed = [code(i) for i in picks]
    try:
        routes = route(addressed, reg)
    except (UnknownRecipient, RecipientUnavailable):
        return
    assert [r.organ_id for r in routes] == addressed
    for r in routes:
        final = reg.get(r.delivered_to)
        assert final is not None and final.status == "active"
        assert r.delivered_to in reg.forward_chain(r.organ_id)
    recipients = distinct_recipients(routes)
    assert len(recipients) == len(set(recipients))
    assert set(recipients) == {r.delivered_to for r in routes}
