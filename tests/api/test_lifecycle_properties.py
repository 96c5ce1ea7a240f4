"""Hypothesis over random conversations: the timeline holds every accepted status once."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import packets
from tests.support.datadir import keyed_settings
from tests.support.harness import start_axis

G22, H41, H14, G17 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14", "000.00.00.G17"
CODES = ["01", "02", "03", "04", "05", "06", "13", "15", "16"]
START = datetime(2026, 11, 23, 8, 0, tzinfo=packets.VIETNAM_TIME)

steps = st.lists(
    st.tuples(
        st.sampled_from([G22, H41, H14, G17]),  # who sends
        st.sampled_from(CODES),
        st.integers(0, 48),  # Timestamp, hours after START
        st.booleans(),  # tampered after signing
    ),
    min_size=1,
    max_size=8,
)


def allowed(who: str, code: str, tampered: bool) -> bool:
    if tampered:
        return False
    return (who == G22 and code == "13") or (who in (H41, H14) and code != "13")


async def scenario(plan: list[tuple[str, str, int, bool]], key: tuple[bytes, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with start_axis(keyed_settings(Path(tmp) / "var", key)) as axis:
            agencies = {code: await axis.register(code) for code in (G22, H41, H14, G17)}
            sender = agencies[G22]
            _, sent = await axis.send(sender, axis.edoc(sender, [H41, H14]))
            doc = sent["document_id"]
            expected: dict[str, Counter[tuple[str, str]]] = {H41: Counter(), H14: Counter()}
            for i, (who, code, hours, tampered) in enumerate(plan):
                agency = agencies[who]
                doc_from = H41 if who == G22 else G22
                body = axis.status(
                    agency,
                    doc_from,
                    doc,
                    code,
                    timestamp=START + timedelta(hours=hours),
                    description=f"bước {i}",
                )
                if tampered:
                    body = body.replace(f"bước {i}".encode(), f"buoc {i}".encode())
                status, answer = await axis.send_status(agency, body)
                assert (status == 201) == allowed(who, code, tampered), (who, code, answer)
                if status == 201:
                    for party in (H41, H14) if code == "13" else (who,):
                        expected[party][(code, answer["id"])] += 1
            _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
            for r in view["recipients"]:
                timeline = r["statuses"]
                got = Counter((s["code"], s["message_id"]) for s in timeline)
                assert got == expected[r["organ_id"]]
                assert [s["at"] for s in timeline] == sorted(s["at"] for s in timeline)


@settings(
    max_examples=12,
    deadline=None,
    # the profile's own (the CI profile drops too_slow), and this test's
    suppress_health_check=[
        *settings.default.suppress_health_check,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(plan=steps)
def test_timeline_holds_every_accepted_status_once(
    plan: list[tuple[str, str, int, bool]], axis_key_pair: tuple[bytes, bytes]
) -> None:
    """Whatever is sent, accepted statuses appear once on the right rows; refused ones never."""
    asyncio.run(scenario(plan, axis_key_pair))
