"""The shipped agencies.yaml: the registry's seed list of level-1 codes."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from axis import codes

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "agencies.yaml"
CSV = ROOT / "tests" / "data" / "reference" / "agencies.csv"
KEYS = ["organ_id", "name", "kind", "parent", "status", "successor", "confirmed", "source"]


@pytest.fixture(scope="module")
def agencies() -> list[dict[str, Any]]:
    data = yaml.safe_load(FILE.read_text("utf-8"))
    assert list(data) == ["agencies"]
    entries: list[dict[str, Any]] = data["agencies"]
    return entries


def test_counts(agencies: list[dict[str, Any]]) -> None:
    """The seed holds all 158 agencies: 95 central and the 63 pre-2025 provinces."""
    assert len(agencies) == 158
    assert sum(a["kind"] == "central" for a in agencies) == 95
    assert sum(a["kind"] == "provincial" for a in agencies) == 63


def test_entry_shape(agencies: list[dict[str, Any]]) -> None:
    """Every entry has the same keys with the types the registry loader expects."""
    for a in agencies:
        assert list(a) == KEYS, a
        assert a["kind"] in ("central", "provincial")
        assert a["status"] in ("active", "closed")
        assert isinstance(a["confirmed"], bool)
        assert isinstance(a["source"], str)
        assert a["source"]


def test_codes_unique_registrable_level1(agencies: list[dict[str, Any]]) -> None:
    """No two entries share a code, and each is a registrable level-1 code with no parent."""
    ids = [a["organ_id"] for a in agencies]
    assert len(set(ids)) == len(ids)
    for a in agencies:
        assert codes.is_registrable(a["organ_id"]), a
        assert codes.level(a["organ_id"]) == 1
        assert a["parent"] is None


def test_closed_provinces_have_active_successor(agencies: list[dict[str, Any]]) -> None:
    """The 29 provinces closed in 2025 each forward to an active surviving province."""
    by_id = {a["organ_id"]: a for a in agencies}
    closed = [a for a in agencies if a["status"] == "closed"]
    assert len(closed) == 29
    for a in closed:
        assert a["kind"] == "provincial"
        succ = by_id[a["successor"]]
        assert succ["status"] == "active"
        assert succ["kind"] == "provincial"
        assert codes.resolve_successor(a["organ_id"], lambda c: by_id[c]["successor"]) == (
            a["organ_id"],
            succ["organ_id"],
        )
    assert all(a["successor"] is None for a in agencies if a["status"] == "active")
    survivors = {a["organ_id"] for a in agencies if a["kind"] == "provincial"} - {
        a["organ_id"] for a in closed
    }
    assert len(survivors) == 34


def test_names_nonempty_nfc(agencies: list[dict[str, Any]]) -> None:
    """Names are non-empty and NFC, so lookups by name compare equal."""
    for a in agencies:
        assert isinstance(a["name"], str)
        assert a["name"].strip()
        assert unicodedata.is_normalized("NFC", a["name"])


def test_file_says_it_is_not_authoritative() -> None:
    """A reader of the file is told it is generated seed data to check before production."""
    head = FILE.read_text("utf-8").split("\nagencies:", 1)[0]
    assert "NOT AUTHORITATIVE" in head
    assert "tools/make_agencies.py" in head


def test_file_matches_generator(tmp_path: Path) -> None:
    """The committed file is exactly what the generator makes from the reference CSV."""
    out = tmp_path / "agencies.yaml"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_agencies.py"), "--out", str(out)],
        check=True,
        cwd=tmp_path,
    )
    assert out.read_bytes() == FILE.read_bytes()
