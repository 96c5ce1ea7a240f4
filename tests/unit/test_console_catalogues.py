"""The console's catalogues: every text of its templates and code is translated to
Vietnamese, with the same placeholders, and nothing is left over from texts that are gone."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from axis.web.console import i18n

HERE = Path(i18n.__file__).resolve().parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted() -> set[str | tuple[str, ...]]:
    with (HERE / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        HERE, method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        found.add(message)
    return found


def catalogue(lang: str) -> dict[str | tuple[str, ...], str | tuple[str, ...]]:
    path = HERE / "locale" / lang / "LC_MESSAGES" / "console.po"
    with path.open("rb") as fh:
        return {m.id: m.string for m in read_po(fh, locale=lang) if m.id}


def test_every_text_is_in_vietnamese_with_the_same_placeholders() -> None:
    """A page never shows an English text to a Vietnamese reader, nor loses a value."""
    texts = extracted()
    vi = catalogue("vi")
    assert texts, "nothing extracted: the mapping is wrong"
    missing = sorted(str(t) for t in texts if not vi.get(t))
    assert not missing, missing
    for msgid, msgstr in vi.items():
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        strings = msgstr if isinstance(msgstr, tuple) else (msgstr,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, (msgid, string)


def test_both_catalogues_hold_exactly_the_texts_in_use() -> None:
    """Texts removed from the pages go from the catalogues too (pybabel update)."""
    texts = extracted()
    for lang in i18n.LANGUAGES:
        assert set(catalogue(lang)) == texts, lang


def test_dates_are_vietnam_time_and_numbers_use_the_languages_separators() -> None:
    """dd/MM/yyyy HH:mm at UTC+7; 1.000.000 in Vietnamese, 1,000,000 in English."""
    assert i18n.vn_time("2026-11-23T17:05:00.000000+00:00") == "24/11/2026 00:05"
    i18n.load()
    token = i18n.use("vi")
    try:
        assert i18n.number(1_000_000) == "1.000.000"
        assert i18n.gettext("Overview") == "Tổng quan"
    finally:
        i18n.reset(token)
    token = i18n.use("en")
    try:
        assert i18n.number(1_000_000) == "1,000,000"
        assert i18n.gettext("Overview") == "Overview"
    finally:
        i18n.reset(token)
