"""Query values, read strictly: a number is what its digits say, or a 400 naming it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.errors import InvalidRequest
from axis.web import query


@given(st.text(max_size=25))
def test_an_integer_is_ascii_digits_or_refused(raw: str) -> None:
    """Exactly the ASCII-digit strings in range are read, as int() of them; no sign, no
    space, no other script's digits, no underscore."""
    ascii_digits = raw != "" and all("0" <= ch <= "9" for ch in raw) and len(raw) <= 19
    refusal = ""
    try:
        value = query.digits("limit", raw, 1, 1000)
    except InvalidRequest as exc:
        refusal = exc.detail
    if refusal:
        assert refusal.startswith("limit: an integer from 1 to 1000")
        assert not ascii_digits or not 1 <= int(raw) <= 1000
    else:
        assert ascii_digits and value == int(raw) and 1 <= value <= 1000


@given(st.integers(min_value=1, max_value=1000))
def test_every_integer_in_range_is_read(value: int) -> None:
    """The digits of any integer from 1 to 1000 are accepted as that integer."""
    assert query.digits("limit", str(value), 1, 1000) == value


@pytest.mark.parametrize("raw", ["+5", "５", " 5", "5 ", "5_0", "0x5", "5.0", "-0", "٥"])
def test_what_int_would_take_is_not_a_number_here(raw: str) -> None:
    """Forms Python's int() (or a lax parser) takes, refused."""
    with pytest.raises(InvalidRequest):
        query.digits("limit", raw, 0, 1000)
