"""Routing, pure: a verified package's addressees and the registry give the deliveries.

A closed code forwards to its successor (following chains), so mail to a province merged in
2025 reaches the province that absorbed it. Two addressed codes that end at the same agency
make one delivery: a recipient gets each message once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from axis.errors import InvalidRequest, RecipientUnavailable, UnknownRecipient
from axis.registry import Registry


@dataclass(frozen=True, slots=True)
class Route:
    """One addressed code and the agency that actually receives for it."""

    organ_id: str
    delivered_to: str

    @property
    def forwarded(self) -> bool:
        return self.organ_id != self.delivered_to


def route(addressees: Sequence[str], registry: Registry) -> tuple[Route, ...]:
    """Resolve every addressed code; refuse the whole package if any cannot be delivered.

    Raises ``UnknownRecipient`` for a code that is not registered and ``RecipientUnavailable``
    for a suspended one, or a closed one with no active successor; the detail names the code.
    """
    routes: list[Route] = []
    for organ_id in addressees:
        if registry.get(organ_id) is None:
            raise UnknownRecipient(f"To/OrganId {organ_id} is not a registered agency")
        try:
            chain = registry.forward_chain(organ_id)
        except InvalidRequest as exc:
            raise RecipientUnavailable(
                f"To/OrganId {organ_id}: its successors form a cycle ({exc.detail})"
            ) from None
        final = registry.get(chain[-1])
        if final is None:
            raise RecipientUnavailable(
                f"To/OrganId {organ_id} is closed; its successor {chain[-1]} is not registered"
            )
        if final.status != "active":
            if len(chain) == 1:
                raise RecipientUnavailable(f"To/OrganId {organ_id} is {final.status}")
            raise RecipientUnavailable(
                f"To/OrganId {organ_id} is closed and its mail goes to {final.organ_id}"
                f" ({' -> '.join(chain)}), which is {final.status}"
            )
        routes.append(Route(organ_id, final.organ_id))
    return tuple(routes)


def distinct_recipients(routes: Sequence[Route]) -> tuple[str, ...]:
    """The agencies that get a delivery, in address order, each once."""
    return tuple(dict.fromkeys(r.delivered_to for r in routes))
