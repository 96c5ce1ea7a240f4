"""Receipts: signed by the axis, verifiable offline with the published certificate."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
import xmlsec
from lxml import etree
from signxml import XMLVerifier

from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
NS = {"r": "urn:axis:receipt:1"}


async def _receipt(axis: AxisHarness) -> tuple[bytes, bytes, bytes, dict[str, object]]:
    sender = await axis.register(G22)
    body = axis.edoc(sender, [H41, "000.00.00.H22"])
    _, answer = await axis.send(sender, body)
    status, receipt = await axis.get(sender, answer["receipt_url"])
    assert status == 200
    async with axis.session.get(f"{axis.url}/v1/axis/certificate") as resp:
        assert resp.status == 200
        cert = await resp.read()
    return receipt, cert, body, answer


async def test_receipt_states_what_was_received(axis: AxisHarness) -> None:
    """The receipt names the message, sender, DocumentId, recipients and SHA-256 of the bytes."""
    receipt, _, body, answer = await _receipt(axis)
    root = etree.fromstring(receipt)
    assert root.findtext("r:MessageId", namespaces=NS) == answer["id"]
    assert root.findtext("r:From", namespaces=NS) == G22
    assert root.findtext("r:DocumentId", namespaces=NS) == answer["document_id"]
    assert root.findtext("r:Digest", namespaces=NS) == hashlib.sha256(body).hexdigest()
    assert root.findtext("r:ReceivedAt", namespaces=NS) == answer["received_at"]
    recipients = [
        (r.get("organId"), r.get("deliveredTo"))
        for r in root.iterfind("r:Recipients/r:Recipient", NS)
    ]
    assert recipients == [(H41, H41), ("000.00.00.H22", "000.00.00.H60")]
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parents[2] / "schemas/receipt.xsd")))
    schema.assertValid(root)


async def test_a_recipient_gets_a_receipt_naming_only_itself(axis: AxisHarness) -> None:
    """A recipient's receipt lists its own row, not who else the document went to."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    _, answer = await axis.send(sender, axis.edoc(sender, [H41, "000.00.00.H22"]))
    status, receipt = await axis.get(receiver, answer["receipt_url"])
    assert status == 200
    root = etree.fromstring(receipt)
    organs = [r.get("organId") for r in root.iterfind("r:Recipients/r:Recipient", NS)]
    assert organs == [H41]
    status, _ = await axis.get(await axis.register("000.00.00.H14"), answer["receipt_url"])
    assert status == 404


async def test_receipt_verifies_with_two_independent_implementations(axis: AxisHarness) -> None:
    """python-xmlsec and signxml both verify the receipt against the published certificate."""
    receipt, cert, _, _ = await _receipt(axis)
    root = etree.fromstring(receipt)
    node = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(cert, xmlsec.constants.KeyDataFormatCertPem)
    ctx.verify(node)
    XMLVerifier().verify(receipt, x509_cert=cert.decode())


async def test_tampered_receipt_fails_verification(axis: AxisHarness) -> None:
    """Changing the digest in a receipt breaks its signature."""
    receipt, cert, body, _ = await _receipt(axis)
    forged = receipt.replace(hashlib.sha256(body).hexdigest().encode(), b"0" * 64)
    root = etree.fromstring(forged)
    node = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(cert, xmlsec.constants.KeyDataFormatCertPem)
    with pytest.raises(xmlsec.Error):
        ctx.verify(node)


@pytest.mark.skipif(
    shutil.which("xmlsec1") is None, reason="xmlsec1 not installed (apt-get install xmlsec1)"
)
async def test_receipt_verifies_with_the_xmlsec1_command(axis: AxisHarness, tmp_path: Path) -> None:
    """`xmlsec1 --verify --pubkey-cert-pem axis.pem receipt.xml` accepts the receipt."""
    receipt, cert, _, _ = await _receipt(axis)
    (tmp_path / "receipt.xml").write_bytes(receipt)
    (tmp_path / "axis.pem").write_bytes(cert)
    done = subprocess.run(  # noqa: ASYNC221 - a short offline check after the server answered
        ["xmlsec1", "--verify", "--pubkey-cert-pem", "axis.pem", "receipt.xml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
