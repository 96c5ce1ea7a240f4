"""Identifiers: their shape, their order in time, and the base32 they are written in."""

from __future__ import annotations

import re
import time

from hypothesis import given
from hypothesis import strategies as st

from axis import ids

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def digits(value: int, length: int) -> str:
    """The plain definition: ``length`` base32 digits, most significant first."""
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(length)))


@given(
    st.integers(min_value=1, max_value=30).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, 32**n - 1))
    )
)
def test_b32_writes_every_value_as_its_plain_digits(case: tuple[int, int]) -> None:
    """The fast encoder agrees with the definition for every length and value."""
    length, value = case
    assert ids._b32(value, length) == digits(value, length)


def test_new_ids_have_their_shape_and_sort_by_time() -> None:
    """Prefix, then 26 Crockford digits; an id made a millisecond later sorts after."""
    first = ids.new_id("msg")
    time.sleep(0.002)
    later = ids.new_id("msg")
    assert re.fullmatch(r"msg_[0-9a-hjkmnp-tv-z]{26}", first)
    assert first < later
    assert len({ids.new_id("dlv") for _ in range(10_000)}) == 10_000
