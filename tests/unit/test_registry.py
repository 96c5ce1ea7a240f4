"""The registry core: reading registrations, links between agencies, changes, search, expiry."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from axis import codes, registry
from axis.errors import InvalidRequest
from axis.registry import Agency, Certificate, Registry, agency_from_mapping
from tests.support import pki

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
H01, H02, H03, H04 = (f"000.00.00.H0{n}" for n in range(1, 5))


def cert(
    slot: int = 0, not_before: dt.datetime | None = None, not_after: dt.datetime | None = None
) -> Certificate:
    ident = pki.identity(
        "p256",
        common_name=f"signer {slot}",
        slot=slot,
        not_before=not_before,
        not_after=not_after,
    )
    return Certificate.from_pem(ident.cert_pem)


def agency(code: str, status: str = "active", successor: str | None = None, **kw: Any) -> Agency:
    return agency_from_mapping(
        code,
        {"name": kw.pop("name", f"Agency {code}"), "status": status, "successor": successor, **kw},
    )


# -- reading a registration ----------------------------------------------------------------


@st.composite
def registrable(draw: st.DrawFn) -> str:
    """Any registrable code, built from the EDXML.md rule: a level, then exactly its parts."""
    lvl = draw(st.integers(1, 4))
    digits = "0123456789"
    x = draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) + draw(
        st.text(digits, min_size=2, max_size=2)
    )

    def nonzero(n: int) -> st.SearchStrategy[str]:
        return st.text(digits, min_size=n, max_size=n).filter(lambda s: set(s) != {"0"})

    mm = draw(nonzero(2)) if lvl >= 2 else "00"
    zz = draw(nonzero(2)) if lvl >= 3 else "00"
    yyy = draw(nonzero(3)) if lvl >= 4 else "000"
    return f"{yyy}.{zz}.{mm}.{x}"


def rule_parent(code: str) -> str | None:
    """EDXML.md, written independently: zero the leftmost non-zero part; level 1 has none."""
    yyy, zz, mm, x = code.split(".")
    if yyy != "000":
        return f"000.{zz}.{mm}.{x}"
    if zz != "00":
        return f"000.00.{mm}.{x}"
    if mm != "00":
        return f"000.00.00.{x}"
    return None


@given(registrable())
def test_registration_derives_the_parent_of_the_code(code: str) -> None:
    """A registration gets the parent EDXML.md derives; naming that parent is accepted."""
    derived = rule_parent(code)
    assert agency(code).parent == derived
    assert agency(code, parent=derived).parent == derived


@given(registrable(), registrable())
def test_registration_refuses_a_parent_other_than_the_derived_one(code: str, other: str) -> None:
    """Naming any parent but the derived one is invalid_request on the parent field."""
    if other == rule_parent(code):
        return
    with pytest.raises(InvalidRequest, match=r"^parent: "):
        agency(code, parent=other)


@given(registrable())
def test_a_level_2_to_4_code_needs_its_parent_registered(code: str) -> None:
    """Below level 1 a code is registrable only once its parent is; level 1 needs nothing."""
    unit = agency(code)
    if unit.parent is None:
        registry.check_links(unit, Registry.of([]).link)
        return
    with pytest.raises(InvalidRequest, match=r"^parent: .* not registered"):
        registry.check_links(unit, Registry.of([unit]).link)
    registry.check_links(unit, Registry.of([unit, agency(unit.parent)]).link)


@given(st.text(".0123456789ABCDEFGHZ", min_size=1, max_size=20))
def test_registration_refuses_codes_not_in_the_classic_form(code: str) -> None:
    """Whatever codes.is_registrable refuses, a registration refuses naming organ_id."""
    if codes.is_registrable(code):
        return
    with pytest.raises(InvalidRequest, match=r"^organ_id "):
        agency(code)


def test_credentials_are_kept_when_a_body_leaves_them_out() -> None:
    """A body without certificates or push_secret keeps the registered ones; [] and null clear."""
    pinned = cert()
    before = agency(H01, certificates=[pinned.pem], push_secret="s3cret")
    renamed = agency_from_mapping(H01, {"name": "New name"}, before)
    assert renamed.certificates == before.certificates
    assert renamed.push_secret == "s3cret"
    cleared = agency_from_mapping(
        H01, {"name": "x", "certificates": [], "push_secret": None}, before
    )
    assert cleared.certificates == ()
    assert cleared.push_secret is None


def test_a_body_read_with_get_can_be_put_back() -> None:
    """The administrator's view (certificate objects, token ids) is accepted as a body."""
    before = agency(H01, certificates=[cert().pem])
    view = registry.admin_json(before, ["tok_1"], NOW)
    again = agency_from_mapping(H01, view, before)
    assert registry.changes(before, again) == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "sucessor": H02}, "sucessor"),
        ({"name": "x", "organ_id": H02}, "organ_id"),
        ({"name": "x" * 201}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"name": "x", "status": "gone"}, "status"),
        ({"name": "x", "successor": H02}, "successor"),
        ({"name": "x", "status": "closed", "successor": H01}, "successor"),
        ({"name": "x", "certificates": ["nope"]}, "certificates[0]"),
        ({"name": "x", "allow_sha1": "yes"}, "allow_sha1"),
        ({"name": "x", "endpoint": "ftp://x"}, "endpoint"),
    ],
)
def test_bad_fields_are_named(body: dict[str, Any], field: str) -> None:
    """Each wrong field is invalid_request whose detail starts with the field's name."""
    with pytest.raises(InvalidRequest) as caught:
        agency_from_mapping(H01, body)
    assert caught.value.detail.startswith(field), caught.value.detail


def test_names_are_stored_in_one_unicode_form() -> None:
    """A name typed in decomposed form is stored composed (NFC), so it is one name."""
    typed = unicodedata.normalize("NFD", "Hà Nội")
    assert agency(H01, name=typed).name == "Hà Nội"


# -- links: parents, successors, cycles -----------------------------------------------------


def test_successor_must_be_registered_and_active() -> None:
    """A successor that is unknown or suspended is refused; an active one is accepted."""
    reg = Registry.of([agency(H02), agency(H03, "suspended")])
    registry.check_links(agency(H01, "closed", H02), reg.link)
    with pytest.raises(InvalidRequest, match=r"successor: 000.00.00.H04 is not a registered"):
        registry.check_links(agency(H01, "closed", H04), reg.link)
    with pytest.raises(InvalidRequest, match=r"successor: 000.00.00.H03 is suspended"):
        registry.check_links(agency(H01, "closed", H03), reg.link)


def test_closed_successor_is_refused_naming_where_its_mail_goes() -> None:
    """Closing into a closed code is refused, and the detail names the end of its chain."""
    reg = Registry.of([agency(H02, "closed", H03), agency(H03)])
    with pytest.raises(InvalidRequest, match=r"H02 is closed .*goes to 000.00.00.H03"):
        registry.check_links(agency(H01, "closed", H02), reg.link)


def test_cycle_of_successors_is_refused_naming_it() -> None:
    """A successor whose chain leads back is refused as a cycle, listing the loop."""
    reg = Registry.of([agency(H01, "closed", H02), agency(H02, "closed", H03), agency(H03)])
    change = agency(H03, "closed", H01)
    with pytest.raises(InvalidRequest, match=r"cycle: .*H03 → .*H01 → .*H02 → .*H03"):
        registry.check_links(change, reg.with_agencies([change]).link)


def test_import_checks_links_whatever_the_order() -> None:
    """A file may list a closed code before the code it merged into; all problems are listed."""
    base = Registry.of([agency(H04)])
    good = [agency(H01, "closed", H02), agency(H02)]
    base.check_import(good, "file")
    bad = [agency(H01, "closed", H03), agency("000.00.01.H07")]
    with pytest.raises(InvalidRequest) as caught:
        base.check_import(bad, "file")
    assert "2 problems" in caught.value.detail
    assert "000.00.00.H01: successor" in caught.value.detail
    assert "000.00.01.H07: parent" in caught.value.detail


# -- changes ---------------------------------------------------------------------------------


def test_changes_name_fields_and_hide_the_push_secret() -> None:
    """The diff lists changed fields only; a push secret appears as set, never its value."""
    a, b = cert(0), cert(1)
    before = agency(H01, certificates=[a.pem, b.pem], push_secret="one")
    same = agency(H01, certificates=[b.pem, a.pem], push_secret="one")
    assert registry.changes(before, same) == {}
    after = agency(H01, "suspended", certificates=[a.pem], push_secret="two")
    diff = registry.changes(before, after)
    assert set(diff) == {"status", "certificates", "push_secret"}
    assert diff["push_secret"] == {"from": "(set)", "to": "(set)"}
    assert diff["certificates"]["to"] == [a.sha256]
    assert "two" not in repr(diff)
    assert set(registry.changes(None, after)) >= {"name", "kind", "status"}


# -- search ----------------------------------------------------------------------------------

_MARKED = {
    "a": "aàáảãạăằắẳẵặâầấẩẫậ",
    "d": "dđ",
    "e": "eèéẻẽẹêềếểễệ",
    "i": "iìíỉĩị",
    "o": "oòóỏõọôồốổỗộơờớởỡợ",
    "u": "uùúủũụưừứửữự",
    "y": "yỳýỷỹỵ",
}


@st.composite
def vietnamese(draw: st.DrawFn) -> tuple[str, str]:
    """``(plain, marked)``: ASCII words, and the same words with tone marks and random case."""
    words = draw(
        st.lists(st.text("abdeghiklmnouy", min_size=1, max_size=7), min_size=1, max_size=4)
    )
    plain = " ".join(words)
    marked = "".join(
        draw(st.sampled_from(_MARKED.get(ch, ch))) if ch != " " else " " for ch in plain
    )
    cased = "".join(ch.upper() if draw(st.booleans()) else ch for ch in marked)
    return plain, cased


@pytest.mark.parametrize(
    ("name", "typed"),
    [
        ("Thành phố Hà Nội", "ha noi"),
        ("Thành phố Hà Nội", "HÀ NỘI"),
        ("Thành phố Đà Nẵng", "da nang"),
        ("Tỉnh Đắk Lắk", "đak lak"),
        ("Tỉnh Thừa Thiên  Huế", "thua thien hue"),
        ("Tỉnh \u00d0ồng Nai", "dong nai"),
    ],
)
def test_search_ignores_diacritics_and_case(name: str, typed: str) -> None:
    """A name is found whether it is typed with or without diacritics, in any case."""
    reg = Registry.of([agency(H01, name=name), agency(H02, name="Bộ Tài chính")])
    assert [a.organ_id for a in reg.search(typed)] == [H01]


@settings(max_examples=200)
@given(vietnamese())
def test_search_finds_marked_names_by_plain_text(pair: tuple[str, str]) -> None:
    """Any name with tone marks is found by its plain letters, in any case, and by itself."""
    plain, marked = pair
    reg = Registry.of([agency(H01, name=f"Tỉnh {marked}")])
    assert reg.search(plain)[0].organ_id == H01
    assert reg.search(plain.upper())[0].organ_id == H01
    assert reg.search(marked)[0].organ_id == H01


@given(st.text(max_size=30))
def test_fold_is_idempotent_and_unmarked(text: str) -> None:
    """Folding twice is folding once, and leaves no combining marks and no capitals."""
    folded = registry.fold(text)
    assert registry.fold(folded) == folded
    assert not any(unicodedata.combining(ch) for ch in unicodedata.normalize("NFD", folded))


def test_search_by_code_status_and_kind() -> None:
    """Codes match in any case; status and kind filter; results come in code order."""
    reg = Registry.of(
        [
            agency(H03, kind="provincial"),
            agency(H01, "closed", H03, kind="provincial"),
            agency("000.00.00.G22", kind="central"),
        ]
    )
    assert [a.organ_id for a in reg.search("h0")] == [H01, H03]
    assert [a.organ_id for a in reg.search(status="closed")] == [H01]
    assert [a.organ_id for a in reg.search(kind="central")] == ["000.00.00.G22"]
    assert [a.organ_id for a in reg.search()] == ["000.00.00.G22", H01, H03]


# -- certificates ----------------------------------------------------------------------------


def test_expiring_lists_certificates_ending_within_30_days() -> None:
    """Certificates ending within 30 days, and expired ones, are listed; later ones are not."""
    soon = cert(0, not_before=NOW - 300 * DAY, not_after=NOW + 10 * DAY)
    gone = cert(1, not_before=NOW - 300 * DAY, not_after=NOW - DAY)
    later = cert(2, not_before=NOW - DAY, not_after=NOW + 300 * DAY)
    reg = Registry.of(
        [agency(H02, certificates=[soon.pem, later.pem]), agency(H01, certificates=[gone.pem])]
    )
    found = reg.expiring(NOW)
    assert [(e.organ_id, e.sha256) for e in found] == [(H01, gone.sha256), (H02, soon.sha256)]
    assert gone.state(NOW) == "expired"
    assert later.state(NOW) == "valid"
    assert cert(3, not_before=NOW + DAY, not_after=NOW + 9 * DAY).state(NOW) == "not_yet_valid"


# -- files -----------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=60).filter(
    lambda s: s.strip() and not any(unicodedata.category(c)[0] == "C" for c in s)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(names, min_size=1, max_size=5), st.booleans())
def test_export_reads_back_identically(texts: list[str], with_cert: bool) -> None:
    """What dump_document writes, parse_document reads back as the same agencies."""
    pins = [cert(0).pem] if with_cert else []
    agencies = [
        agency(f"000.00.00.H{i:02d}", name=text, certificates=pins, push_secret=f"k{i}")
        for i, text in enumerate(texts, start=1)
    ]
    text = registry.dump_document(agencies)
    back = registry.parse_document(yaml.safe_load(text), "export")
    assert [registry.changes(a, b) for a, b in zip(agencies, back, strict=True)] == [
        {} for _ in agencies
    ]
    assert registry.dump_document(back) == text


def test_a_file_listing_a_code_twice_is_refused() -> None:
    """A code listed twice is an error naming it, since which entry wins would be a guess."""
    doc = {"agencies": [{"organ_id": H01, "name": "a"}, {"organ_id": H01, "name": "b"}]}
    with pytest.raises(InvalidRequest, match=r"000.00.00.H01: listed twice"):
        registry.parse_document(doc, "file")


@pytest.mark.parametrize(
    ("code", "kind"),
    [("000.00.00.G22", "central"), (H01, "provincial"), ("000.00.00.K26", "provincial"),
     ("000.00.05.H41", "unit"), ("001.02.01.H59", "unit")],
)  # fmt: skip
def test_a_registration_without_kind_gets_the_kind_its_code_says(code: str, kind: str) -> None:
    """Level-1 H and K codes are provincial, other level-1 codes central, lower levels units."""
    assert agency_from_mapping(code, {"name": "x"}).kind == kind
