"""Agency codes: the packet alphabet, the registry's classic form, hierarchy and successors."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from axis import codes
from axis.errors import InvalidRequest

ALPHABET = ".0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


def _nonzero(n: int) -> st.SearchStrategy[str]:
    return _digits(n).filter(lambda s: s != "0" * n)


@st.composite
def registrable(draw: st.DrawFn) -> str:
    """Any registrable code: each of the three lower parts zero or not, levels skipped or not."""
    x = draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) + draw(_digits(2))
    mm = draw(st.one_of(st.just("00"), _nonzero(2)))
    zz = draw(st.one_of(st.just("00"), _nonzero(2)))
    yyy = draw(st.one_of(st.just("000"), _nonzero(3)))
    return f"{yyy}.{zz}.{mm}.{x}"


def _zero_part(code: str, n: int) -> str:
    """The EDXML.md rule written independently: zero the level-n part (right to left)."""
    yyy, zz, mm, x = code.split(".")
    parts = {2: (yyy, zz, "00", x), 3: (yyy, "00", mm, x), 4: ("000", zz, mm, x)}[n]
    return ".".join(parts)


# -- examples from EDXML.md ---------------------------------------------------------------


def test_edxml_parent_chain() -> None:
    """The parent chain in EDXML.md is what parent() and ancestors() give."""
    assert codes.parent("001.02.01.H59") == "000.02.01.H59"
    assert codes.parent("000.02.01.H59") == "000.00.01.H59"
    assert codes.parent("000.00.01.H59") == "000.00.00.H59"
    assert codes.parent("000.00.00.H59") is None
    assert codes.ancestors("001.02.01.H59") == ("000.02.01.H59", "000.00.01.H59", "000.00.00.H59")


@pytest.mark.parametrize(
    ("code", "lvl"),
    [
        ("000.00.00.G22", 1),
        ("000.00.18.G12", 2),
        ("000.02.01.H59", 3),
        ("001.02.01.H59", 4),
    ],
)
def test_edxml_levels(code: str, lvl: int) -> None:
    """EDXML.md's example codes have the levels the text gives them."""
    assert codes.level(code) == lvl
    assert codes.level1(code) == "000.00.00." + code[-3:]


def test_level1_code_has_no_ancestors() -> None:
    """A level-1 code is its own top and has nothing above it."""
    assert codes.ancestors("000.00.00.G22") == ()
    assert codes.level1("000.00.00.G22") == "000.00.00.G22"


@pytest.mark.parametrize(
    ("code", "lvl", "chain"),
    [
        ("002.00.20.H13", 4, ("000.00.20.H13", "000.00.00.H13")),  # the sender of edoc.edxml
        ("000.05.00.H59", 3, ("000.00.00.H59",)),
        ("001.02.00.H59", 4, ("000.02.00.H59", "000.00.00.H59")),
    ],
)
def test_a_code_that_skips_levels_is_registrable_under_the_next_one_up(
    code: str, lvl: int, chain: tuple[str, ...]
) -> None:
    """Field codes skip levels; the parent is the code with its own level's part zeroed."""
    assert codes.is_registrable(code)
    assert codes.level(code) == lvl
    assert codes.ancestors(code) == chain


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("", "is empty"),
        ("000.00.00.g22", "outside"),
        ("000.00.00.G22 ", "outside"),
        ("000.00.00.G22\n", "outside"),
        ("000.00.00.G٢٢", "outside"),  # Arabic-Indic digits
        ("0" * 36, "longer than 35"),
        ("G22", "form YYY.ZZ.MM.Xnn"),
        ("000.00.00.22G", "form YYY.ZZ.MM.Xnn"),
        ("000.00.00.G221", "form YYY.ZZ.MM.Xnn"),
        ("00.000.00.G22", "form YYY.ZZ.MM.Xnn"),
    ],
)
def test_check_registrable_detail(code: str, says: str) -> None:
    """A refused code gets a detail naming the field and what is wrong with it."""
    with pytest.raises(InvalidRequest, match=says) as info:
        codes.check_registrable(code, field="organ_id")
    assert info.value.detail.startswith("organ_id ")


def test_check_registrable_returns_code() -> None:
    """check_registrable hands the code back so callers can use it inline."""
    assert codes.check_registrable("000.00.18.G12") == "000.00.18.G12"


def test_long_code_is_shortened_in_detail() -> None:
    """A huge hostile code does not end up whole in the error detail."""
    with pytest.raises(InvalidRequest) as info:
        codes.check_registrable("A" * 10_000)
    assert len(info.value.detail) < 200


@pytest.mark.parametrize("code", ["A", "G22", "1.2.3", "0" * 35, "000.00.00.00.G22", "..."])
def test_wellformed_but_not_classic(code: str) -> None:
    """Packets may carry any OrganId in the edXML alphabet, classic form or not."""
    assert codes.is_wellformed(code)
    assert not codes.is_registrable(code)


# -- properties ---------------------------------------------------------------------------


@given(registrable())
def test_parent_is_higher_up_and_registrable(code: str) -> None:
    """Every registrable code below level 1 has a registrable parent at a higher level."""
    assert codes.is_registrable(code)
    up = codes.parent(code)
    if codes.level(code) == 1:
        assert up is None
    else:
        assert up is not None
        assert codes.is_registrable(up)
        assert codes.level(up) < codes.level(code)


@given(registrable())
def test_parent_zeroes_own_level_part(code: str) -> None:
    """parent() agrees with EDXML.md: the level-n code with its level-n part zeroed."""
    n = codes.level(code)
    if n > 1:
        assert codes.parent(code) == _zero_part(code, n)


@given(registrable())
def test_ancestors_end_at_level1(code: str) -> None:
    """The ancestor chain climbs to a higher level each step and stops at the level-1 code."""
    chain = codes.ancestors(code)
    levels = [codes.level(code), *(codes.level(a) for a in chain)]
    assert levels == sorted(set(levels), reverse=True)
    assert len(chain) == sum(part.strip("0") != "" for part in code.split(".")[:3])
    if chain:
        assert chain[-1] == codes.level1(code)
    assert all(codes.level1(a) == codes.level1(code) for a in chain)


@given(registrable())
def test_registrable_implies_wellformed(code: str) -> None:
    """Whatever the registry accepts, a packet may carry."""
    assert codes.is_wellformed(code)
    assert codes.check_registrable(code) == code


@given(st.text(ALPHABET, min_size=1, max_size=codes.MAX_LEN))
def test_alphabet_strings_are_wellformed(code: str) -> None:
    """Any 1..35-character string over '.', 0-9, A-Z is a well-formed OrganId."""
    assert codes.is_wellformed(code)


@given(st.text(min_size=1, max_size=60))
def test_strings_outside_alphabet_never_wellformed(code: str) -> None:
    """A string with a single character outside the alphabet is never well-formed."""
    assume(any(c not in ALPHABET for c in code))
    assert not codes.is_wellformed(code)
    assert not codes.is_registrable(code)


@given(st.text(ALPHABET, min_size=codes.MAX_LEN + 1, max_size=80))
def test_too_long_never_wellformed(code: str) -> None:
    """Even in the right alphabet, more than 35 characters is not an OrganId."""
    assert not codes.is_wellformed(code)


@given(st.text(max_size=40))
def test_is_registrable_agrees_with_check(code: str) -> None:
    """is_registrable and check_registrable never disagree."""
    if codes.is_registrable(code):
        assert codes.check_registrable(code) == code
    else:
        with pytest.raises(InvalidRequest):
            codes.check_registrable(code)


# -- successors ---------------------------------------------------------------------------


def _lookup(table: dict[str, str]) -> Callable[[str], str | None]:
    return table.get


def test_resolve_successor_open_code() -> None:
    """Mail for a code that is not closed goes to that code."""
    assert codes.resolve_successor("000.00.00.H05", _lookup({})) == ("000.00.00.H05",)


def test_resolve_successor_2025_merger() -> None:
    """Mail for Bắc Giang (H02, closed) goes to Bắc Ninh (H05)."""
    table = {"000.00.00.H02": "000.00.00.H05"}
    assert codes.resolve_successor("000.00.00.H02", _lookup(table)) == (
        "000.00.00.H02",
        "000.00.00.H05",
    )


def test_resolve_successor_self_cycle() -> None:
    """A code recorded as its own successor is reported, not followed forever."""
    with pytest.raises(InvalidRequest, match="cycle") as info:
        codes.resolve_successor("000.00.00.H02", _lookup({"000.00.00.H02": "000.00.00.H02"}))
    assert "000.00.00.H02 → 000.00.00.H02" in info.value.detail


def test_resolve_successor_cycle_names_codes() -> None:
    """A cycle further down the chain is reported with the codes in the loop."""
    table = {"A": "B", "B": "C", "C": "D", "D": "B"}
    with pytest.raises(InvalidRequest) as info:
        codes.resolve_successor("A", _lookup(table))
    assert "B → C → D → B" in info.value.detail


@given(st.dictionaries(st.integers(0, 20), st.integers(0, 20), max_size=21), st.integers(0, 20))
def test_resolve_successor_terminates(table: dict[int, int], start: int) -> None:
    """Any successor table either resolves to a code with no successor or reports a cycle."""
    succ = {str(k): str(v) for k, v in table.items()}
    # Independent oracle: walk with a step bound; revisiting within it means a cycle.
    walk, cur = [str(start)], str(start)
    while cur in succ and len(walk) <= len(succ) + 1:
        cur = succ[cur]
        walk.append(cur)
    has_cycle = len(set(walk)) < len(walk)
    if has_cycle:
        with pytest.raises(InvalidRequest, match="cycle"):
            codes.resolve_successor(str(start), succ.get)
    else:
        chain = codes.resolve_successor(str(start), succ.get)
        assert chain == tuple(walk)
        assert chain[-1] not in succ
        assert all(succ[a] == b for a, b in itertools.pairwise(chain))
