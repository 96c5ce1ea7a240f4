"""examples/package.edxml, the README's template: signed as the walk-through says, accepted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import xmlsec
from lxml import etree

from tests.support import pki
from tests.support.harness import AxisHarness

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "package.edxml"
G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


def sign_template(template: bytes, ident: pki.Identity) -> bytes:
    """Fill the template's ds:Signature in place with libxmlsec1 (what `xmlsec1 --sign` does)."""
    root = etree.fromstring(template)
    key = xmlsec.Key.from_memory(ident.key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(ident.cert_pem, xmlsec.constants.KeyDataFormatPem)
    context = xmlsec.SignatureContext()
    context.key = key
    context.sign(xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


async def test_the_example_template_signed_in_place_is_accepted(axis: AxisHarness) -> None:
    """The shipped template, its signature filled in, is a valid package from G22 to H41."""
    ident = pki.identity("rsa2048", common_name="G22 signer")
    sender = await axis.register(G22, ident=ident)
    status, answer = await axis.send(sender, sign_template(EXAMPLE.read_bytes(), ident))
    assert status == 201, answer
    assert [r["organ_id"] for r in answer["recipients"]] == [H41]


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed")
async def test_the_walk_through_signing_command_makes_an_accepted_package(
    axis: AxisHarness, tmp_path: Path
) -> None:
    """`xmlsec1 --sign --privkey-pem g22.key,g22.pem` on the template gives a 201."""
    ident = pki.identity("rsa2048", common_name="G22 signer")
    (tmp_path / "g22.key").write_bytes(ident.key_pem)
    (tmp_path / "g22.pem").write_bytes(ident.cert_pem)
    done = subprocess.run(  # noqa: ASYNC221 - a short local command before the request
        ["xmlsec1", "--sign", "--privkey-pem", "g22.key,g22.pem", "--output", "signed.edxml",
         str(EXAMPLE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sender = await axis.register(G22, ident=ident)
    status, answer = await axis.send(sender, (tmp_path / "signed.edxml").read_bytes())
    assert status == 201, answer
