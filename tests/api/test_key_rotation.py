"""``axis key rotate``: a new signing key, with everything signed before still verifying."""

from __future__ import annotations

from pathlib import Path

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from axis import signing
from axis.config import Settings
from tests.api.test_cli import axis_cli
from tests.support.harness import AxisHarness, start_axis

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


def sha256(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()


async def test_rotation_keeps_earlier_checkpoints_verifiable(
    axis: AxisHarness, tmp_path: Path
) -> None:
    """Checkpoints by the old key and the new both verify; the change is an audit event."""
    settings = axis.settings
    sender = await axis.register(G22)
    assert (await axis.send(sender, axis.edoc(sender, [H41])))[0] == 201
    first = axis_cli(settings, "audit", "checkpoint", raw=True)
    assert first.returncode == 0, first.stderr
    (tmp_path / "first.xml").write_bytes(first.stdout)  # the signed bytes, untouched
    old_key, old_cert = settings.key_path.read_bytes(), settings.cert_path.read_bytes()

    rotated = axis_cli(settings, "key", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_cert = settings.cert_path.read_bytes()
    assert settings.key_path.read_bytes() != old_key and new_cert != old_cert
    kept = list(settings.previous_certs_dir.glob("*.pem"))
    assert [p.read_bytes() for p in kept] == [old_cert]
    assert settings.key_path.stat().st_mode & 0o077 == 0  # the new key is private too

    assert (await axis.send(sender, axis.edoc(sender, [H41])))[0] == 201
    assert axis_cli(settings, "audit", "checkpoint").returncode == 0  # signed by the new key
    verified = axis_cli(settings, "audit", "verify", "--checkpoint", str(tmp_path / "first.xml"))
    assert verified.returncode == 0, verified.stderr
    assert "agrees with the 1 checkpoint file(s) given" in verified.stderr
    assert orjson.loads(verified.stdout)["checkpoints"] == 2

    status, page = await axis.get(axis.admin, "/v1/audit/events?type=axis_key_rotated")
    assert status == 200
    [event] = page["items"]
    assert event["detail"] == {"previous_sha256": sha256(old_cert), "sha256": sha256(new_cert)}
    assert event["actor"].startswith("cli:")

    listing = axis_cli(settings, "key", "list", "--json").stdout
    listed = [orjson.loads(line) for line in listing.splitlines()]
    assert [(c["sha256"], c["current"]) for c in listed] == [
        (sha256(new_cert), True),
        (sha256(old_cert), False),
    ]

    async with start_axis(settings) as restarted:  # what a restart after rotating serves
        async with restarted.session.get(f"{restarted.url}/v1/axis/certificates") as resp:
            assert resp.status == 200
            assert await resp.read() == new_cert + old_cert
        status, verdict = await restarted.get(restarted.admin, "/v1/audit/verify")
        assert status == 200 and verdict["ok"] is True and verdict["checkpoints"] == 2


def test_a_pair_that_does_not_match_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    """A key and a certificate that are not a pair are refused, exit 2, the axis key kept."""
    assert axis_cli(settings, "init").returncode == 0
    before = settings.key_path.read_bytes(), settings.cert_path.read_bytes()
    stranger_key, _ = signing.generate_axis_key("stranger")
    (tmp_path / "k.pem").write_bytes(stranger_key)
    (tmp_path / "c.pem").write_bytes(before[1])
    done = axis_cli(settings, "key", "rotate", "--key", str(tmp_path / "k.pem"), "--cert",
               str(tmp_path / "c.pem"))  # fmt: skip
    assert done.returncode == 2
    assert "does not match" in done.stderr
    assert (settings.key_path.read_bytes(), settings.cert_path.read_bytes()) == before
    assert not settings.previous_certs_dir.exists()
