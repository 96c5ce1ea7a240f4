"""The files an operator takes: contrib/axis.service (systemd), compose.yaml with its proxy
configuration. systemd checks the unit where it is installed; the compose setup itself is run
by tests/packaging/test_image.py without its registry images (two nodes on one PostgreSQL)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.installed import ROOT, dockerfile_runtime

UNIT = ROOT / "contrib" / "axis.service"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
    "UMask": "0077",
}


def unit() -> dict[str, dict[str, list[str]]]:
    """The unit's sections and their settings (a key may be given more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def test_the_service_unit_is_hardened_around_its_data_directory() -> None:
    """The axis may write its data directory and nothing else; it gets no privileges."""
    service = unit()["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == [value], key
    environment = dict(
        pair.split("=", 1) for line in service["Environment"] for pair in line.split()
    )
    data = environment["AXIS_DATA"]
    assert service["ReadWritePaths"] == [data] == service["WorkingDirectory"]
    assert service["ExecStart"] == ["/opt/axis/bin/axis serve"]
    assert service["KillSignal"] == ["SIGTERM"] and service["User"] == ["axis"]


def test_systemd_accepts_the_unit() -> None:
    """`systemd-analyze verify` finds nothing to say about it, and rates its exposure low."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    tool = shutil.which("true")
    assert tool is not None
    # the check wants ExecStart's program to exist: give it one that does
    copy = Path(subprocess.check_output(["mktemp", "-d"], text=True).strip()) / "axis.service"
    try:
        copy.write_text(UNIT.read_text().replace("/opt/axis/bin/axis", tool))
        done = subprocess.run(
            [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and done.stdout + done.stderr == "", done.stderr
        rated = subprocess.run(
            [analyze, "security", "--offline=yes", str(copy)],
            capture_output=True,
            text=True,
            check=False,
        )
        found = re.search(r"Overall exposure level for axis\.service: ([0-9.]+)", rated.stdout)
        assert found is not None, rated.stdout + rated.stderr
        assert float(found.group(1)) <= 2.0  # systemd calls up to 2.9 "OK"
    finally:
        shutil.rmtree(copy.parent)


def test_the_readme_points_to_the_unit_instead_of_a_copy() -> None:
    """One unit: the README names the file and shows no second copy that could drift."""
    readme = (ROOT / "README.md").read_text()
    assert "contrib/axis.service" in readme
    assert "ExecStart=" not in readme


def compose() -> dict[str, dict[str, dict[str, object]]]:
    loaded: dict[str, dict[str, dict[str, object]]] = yaml.safe_load(
        (ROOT / "compose.yaml").read_text()
    )
    return loaded


def test_compose_nodes_share_one_database_and_one_data_volume() -> None:
    """Both nodes and init run the image on the same store and the same data volume (the
    axis key), init first; the proxy waits for both nodes' health checks and sends to both."""
    services = compose()["services"]
    data_mount = f"axis-data:{dockerfile_runtime()['VOLUME'][0]}"
    nodes = [services[name] for name in ("init", "axis1", "axis2")]
    for node in nodes:
        assert node["build"] == "."
        assert node["volumes"] == [data_mount]
        assert node["environment"] == nodes[0]["environment"]
        assert str(node["environment"]["AXIS_STORE"]).startswith("postgresql://")
    assert services["init"]["command"] == ["init"]
    for name in ("axis1", "axis2"):
        assert services[name]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"}
        }
    proxy = services["proxy"]
    assert proxy["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("axis1", "axis2")
    }
    [mount] = proxy["volumes"]
    config = ROOT / str(mount).split(":")[0]
    upstream = re.findall(r"^\s*server (\S+);", config.read_text(), flags=re.MULTILINE)
    assert upstream == ["axis1:8080", "axis2:8080"]
    assert dockerfile_runtime()["env"]["AXIS_PORT"] == "8080"
