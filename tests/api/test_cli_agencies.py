"""The administrator's command line: `axis agencies …` and `axis token …` on a real data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from axis import cli
from axis.config import Settings, build_settings
from tests.support import pki

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
UNIT = "000.00.01.H41"


class Cli:
    """``axis …`` run in this process against one data directory, output captured."""

    def __init__(self, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
        self.data = str(settings.data)
        self.store = settings.store  # empty: SQLite in the data directory
        self.capsys = capsys
        self.capsys.readouterr()

    def __call__(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        code = cli.main([*args, "--data", self.data, "--store", self.store])
        out, err = self.capsys.readouterr()
        if ok:
            assert code == 0, err
        return code, out, err


@pytest.fixture
def axis_cli(settings: Settings, capsys: pytest.CaptureFixture[str]) -> Cli:
    run = Cli(settings, capsys)
    run("init")
    return run


def test_export_then_import_changes_nothing_and_exports_the_same(
    axis_cli: Cli, tmp_path: Path
) -> None:
    """An export imported back leaves every agency alone; exporting again gives the same bytes."""
    first = tmp_path / "agencies.yaml"
    axis_cli("agencies", "export", "--output", str(first))
    _, out, _ = axis_cli("agencies", "import", str(first))
    assert out.splitlines() == ["158 agencies were: 0 added, 0 changed, 158 unchanged"]
    _, again, _ = axis_cli("agencies", "export")
    assert again == first.read_text(encoding="utf-8")


def test_export_round_trips_into_another_axis(
    axis_cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Units, certificates, closures and push settings survive export → import elsewhere."""
    pem = tmp_path / "unit.pem"
    pem.write_bytes(pki.identity("p256", slot=7).cert_pem)
    axis_cli("agencies", "put", UNIT, "--name", "Sở Tài chính", "--kind", "unit",
             "--certificate", str(pem), "--endpoint", "http://127.0.0.1:9/push",
             "--push-secret", "k1")  # fmt: skip
    axis_cli("agencies", "put", G22, "--successor", "000.00.00.G17")
    exported = tmp_path / "export.yaml"
    axis_cli("agencies", "export", "--output", str(exported))

    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    for name in ("axis-key.pem", "axis.pem"):
        (elsewhere / name).write_bytes((Path(axis_cli.data) / name).read_bytes())
    other = Cli(build_settings({"data": elsewhere}, env={}), capsys)
    other("init")
    _, out, _ = other("agencies", "import", str(exported))
    assert out.splitlines() == [
        f"changed {G22} (status, successor)",
        f"added {UNIT}",
        "159 agencies were: 1 added, 1 changed, 157 unchanged",
    ]
    _, again, _ = other("agencies", "export")
    assert again == exported.read_text(encoding="utf-8")
    _, shown, _ = other("agencies", "show", UNIT)
    view = json.loads(shown)
    assert view["push_secret_set"] and view["endpoint"] == "http://127.0.0.1:9/push"
    assert len(view["certificates"]) == 1


def test_import_reports_each_change_and_shows_progress(axis_cli: Cli, tmp_path: Path) -> None:
    """A long import prints progress on stderr and names what it added and changed."""
    exported = tmp_path / "agencies.yaml"
    axis_cli("agencies", "export", "--output", str(exported))
    doc = yaml.safe_load(exported.read_text(encoding="utf-8"))
    [g22] = [e for e in doc["agencies"] if e["organ_id"] == G22]
    g22["name"] = "Văn phòng Chính phủ (đổi tên)"
    doc["agencies"].append({"organ_id": UNIT, "name": "Sở Tài chính", "kind": "unit"})
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    _, out, err = axis_cli("agencies", "import", str(edited), "--dry-run")
    assert out.splitlines()[-1] == "159 agencies would be: 1 added, 1 changed, 157 unchanged"
    _, listed, _ = axis_cli("agencies", "list", "--q", UNIT)
    assert listed == ""

    _, out, err = axis_cli("agencies", "import", str(edited), "--batch", "40")
    assert out.splitlines() == [
        f"changed {G22} (name)",
        f"added {UNIT}",
        "159 agencies were: 1 added, 1 changed, 157 unchanged",
    ]
    progress = [line for line in err.splitlines() if line.startswith("axis: import:")]
    assert progress == [f"axis: import: {n}/159 agencies" for n in (40, 80, 120, 159)]
    _, out, _ = axis_cli("agencies", "import", str(edited))
    assert out.splitlines() == ["159 agencies were: 0 added, 0 changed, 159 unchanged"]


def test_import_with_problems_lists_them_all_and_writes_nothing(
    axis_cli: Cli, tmp_path: Path
) -> None:
    """A cycle, a missing parent and a bad code are all reported; the registry is untouched."""
    bad = tmp_path / "bad.yaml"
    entries = [
        {"organ_id": H41, "name": "A", "status": "closed", "successor": "000.00.00.H60"},
        {"organ_id": "000.00.00.H60", "name": "B", "status": "closed", "successor": H41},
        {"organ_id": "000.00.03.Z98", "name": "orphan", "kind": "unit"},
        {"organ_id": "000.00.00.h26", "name": "lower case"},
        {"organ_id": G22, "name": "ok, but the file is refused as a whole"},
    ]
    bad.write_text(yaml.safe_dump({"agencies": entries}, allow_unicode=True), encoding="utf-8")
    before = tmp_path / "before.yaml"
    axis_cli("agencies", "export", "--output", str(before))
    code, _, err = axis_cli("agencies", "import", str(bad), ok=False)
    assert code == 1
    assert "000.00.00.h26: organ_id" in err  # form: found while reading
    entries.pop(3)
    bad.write_text(yaml.safe_dump({"agencies": entries}, allow_unicode=True), encoding="utf-8")
    code, _, err = axis_cli("agencies", "import", str(bad), "--batch", "1", ok=False)
    assert code == 1
    assert "3 problems" in err and "cycle" in err and "000.00.03.Z98: parent" in err
    _, after, _ = axis_cli("agencies", "export")
    assert after == before.read_text(encoding="utf-8")


def test_put_show_list_suspend_and_rotate(axis_cli: Cli, tmp_path: Path) -> None:
    """put creates and changes one agency; show and list see it; pins rotate by digest."""
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    old.write_bytes(pki.identity("p256", slot=8).cert_pem)
    new.write_bytes(pki.identity("p256", slot=9).cert_pem)
    _, out, err = axis_cli("agencies", "put", UNIT, "--name", "Sở Tài chính tỉnh Nghệ An",
                           "--kind", "unit", "--certificate", str(old))  # fmt: skip
    assert err.strip() == f"axis: {UNIT} added"
    [old_sha] = [c["sha256"] for c in json.loads(out)["certificates"]]
    _, listed, _ = axis_cli("agencies", "list", "--q", "so tai chinh tinh nghe an")
    header, row = listed.splitlines()
    assert header.split() == ["ORGAN_ID", "STATUS", "KIND", "SUCCESSOR", "NAME"]
    assert row.split(maxsplit=4) == [UNIT, "active", "unit", "-", "Sở Tài chính tỉnh Nghệ An"]

    _, _, err = axis_cli("agencies", "put", UNIT, "--status", "suspended")
    assert err.strip() == f"axis: {UNIT} changed (status)"
    _, listed, _ = axis_cli("agencies", "list", "--status", "suspended", "--json")
    assert [json.loads(line)["organ_id"] for line in listed.splitlines()] == [UNIT]

    _, out, _ = axis_cli(
        "agencies", "put", UNIT, "--status", "active", "--add-certificate", str(new)
    )
    assert len(json.loads(out)["certificates"]) == 2
    _, out, _ = axis_cli("agencies", "put", UNIT, "--remove-certificate", old_sha)
    view = json.loads(out)
    assert [c["sha256"] for c in view["certificates"]] != [old_sha]
    assert len(view["certificates"]) == 1 and view["status"] == "active"
    assert [h["status"] for h in view["history"]] == ["active", "suspended", "active", "active"]
    assert all(h["actor"].startswith("cli") for h in view["history"])

    code, _, err = axis_cli("agencies", "put", UNIT, "--remove-certificate", old_sha, ok=False)
    assert code == 1 and "not pinned" in err
    code, _, err = axis_cli("agencies", "put", "000.00.02.Z98", "--name", "x", ok=False)
    assert code == 1 and "parent" in err
    code, _, err = axis_cli("agencies", "show", "000.00.00.Z98", ok=False)
    assert code == 1 and "not registered" in err


def test_token_issue_list_revoke(axis_cli: Cli) -> None:
    """token issue prints the secret once; list shows ids and roles only; revoke is final."""
    _, token, _ = axis_cli("token", "issue", "--agency", G22)
    token = token.strip()
    _, listed, _ = axis_cli("token", "list", "--agency", G22, "--json")
    [info] = [json.loads(line) for line in listed.splitlines()]
    assert info["role"] == "agency" and info["organ_id"] == G22 and info["revoked_at"] is None
    assert token not in listed
    axis_cli("token", "revoke", info["token_id"])
    code, _, _ = axis_cli("token", "revoke", info["token_id"], ok=False)
    assert code == 1
    _, listed, _ = axis_cli("token", "list", "--agency", G22, "--json")
    assert json.loads(listed)["revoked_at"] is not None
