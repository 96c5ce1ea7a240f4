"""The signature policy on packages signed by signxml, and the axis's own receipts."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.verifier import XMLVerifier

from axis import signing
from axis.errors import (
    AxisError,
    SignatureAlgorithm,
    SignatureInvalid,
    SignatureMissing,
    UntrustedSigner,
)
from tests.support import pki, signers

NOW = pki.now()
DAY = dt.timedelta(days=1)
EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def sender() -> pki.Identity:
    return pki.identity("rsa2048", common_name="000.00.00.G22 signer", slot=0)


_SENDER = sender()
_OTHER_AGENCY = pki.identity("rsa2048", common_name="000.00.00.H26 signer", slot=1)


def signed(
    ident: pki.Identity = _SENDER,
    *,
    signature_algorithm: str = "rsa-sha256",
    digest_algorithm: str = "sha256",
    c14n: str = signers.EXC_C14N,
    size: int | None = None,
) -> bytes:
    return signers.sign(
        signers.unsigned_package(size),
        ident.key_pem,
        ident.cert_pem,
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
        c14n=c14n,
    )


_GOOD = signed()


def parse(xml: bytes) -> etree._ElementTree:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)
    return etree.ElementTree(etree.fromstring(xml, parser))


def verify(
    xml: bytes,
    trusted: Sequence[x509.Certificate] = (_SENDER.cert,),
    *,
    allow_sha1: bool = False,
    now: dt.datetime = NOW,
) -> signing.Signer:
    return signing.verify_package(parse(xml), trusted=trusted, allow_sha1=allow_sha1, now=now)


def refused(
    xml: bytes,
    error: type[AxisError],
    detail: str,
    trusted: Sequence[x509.Certificate] = (_SENDER.cert,),
    *,
    allow_sha1: bool = False,
    now: dt.datetime = NOW,
) -> str:
    """Assert that exactly ``error`` is raised, its detail containing ``detail``; return it."""
    with pytest.raises(AxisError) as caught:
        verify(xml, trusted, allow_sha1=allow_sha1, now=now)
    assert type(caught.value) is error, caught.value.detail
    assert detail in caught.value.detail
    return caught.value.detail


# --- packages that pass -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "rsa-sha384", "rsa-sha512"])
def test_rsa_package_from_a_registered_certificate_passes(algorithm: str) -> None:
    """A package signed RSA with SHA-2 by the sender's registered certificate is accepted."""
    signer = verify(signed(signature_algorithm=algorithm))
    assert signer.signature_algorithm == f"http://www.w3.org/2001/04/xmldsig-more#{algorithm}"


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [("p256", "ecdsa-sha256"), ("p384", "ecdsa-sha384"), ("p256", "ecdsa-sha512")],
)
def test_ecdsa_package_passes(curve: pki.KeyKind, algorithm: str) -> None:
    """ECDSA on P-256 or P-384 with SHA-2 is accepted."""
    ident = pki.identity(curve, common_name="000.00.00.G22 EC signer")
    signer = verify(signed(ident, signature_algorithm=algorithm), [ident.cert])
    assert signer.signature_algorithm.endswith(algorithm)


@pytest.mark.parametrize(
    "c14n",
    [
        signers.C14N_10,
        signers.C14N_10 + "#WithComments",
        signers.EXC_C14N,
        signers.EXC_C14N + "WithComments",
        signers.C14N_11,
    ],
)
def test_every_standard_canonicalization_passes(c14n: str) -> None:
    """Senders may canonicalize with C14N 1.0, 1.1 or exclusive C14N, with or without comments."""
    verify(signed(c14n=c14n))


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_sha2_digests_pass(digest: str) -> None:
    """The reference digest may be SHA-256, SHA-384 or SHA-512."""
    verify(signed(digest_algorithm=digest))


def test_signer_names_the_certificate_that_signed() -> None:
    """The result identifies the signing certificate by DER SHA-256 and subject, for the audit."""
    signer = verify(_GOOD, [_OTHER_AGENCY.cert, _SENDER.cert])
    assert signer == signing.Signer(
        certificate_sha256=hashlib.sha256(_SENDER.cert_der).hexdigest(),
        subject="CN=000.00.00.G22 signer,O=Axis test PKI,C=VN",
        signature_algorithm=signing.RSA_SHA256,
    )


def test_ca_issued_certificate_with_its_chain_in_keyinfo_passes() -> None:
    """A CA-issued certificate may bring its chain in KeyInfo; the leaf is what is pinned."""
    leaf, ca = pki.ca_issued(common_name="000.00.00.G22 CA-issued signer")
    xml = signers.sign(signers.unsigned_package(), leaf.key_pem, leaf.cert_pem, chain=[ca.cert_pem])
    assert verify(xml, [leaf.cert]).certificate_sha256 == hashlib.sha256(leaf.cert_der).hexdigest()


def test_a_large_package_passes() -> None:
    """A 1 MB package (an attachment) verifies like a small one."""
    xml = signed(size=1024 * 1024)
    assert len(xml) > 1024 * 1024
    verify(xml)


def test_comments_between_elements_do_not_matter() -> None:
    """Comments between elements (as field packets carry) are not signed but harmless: accepted."""
    xml = _GOOD.replace(b"<edXML:DocumentId>", b"<!-- c --><edXML:DocumentId>", 1)
    verify(xml)


# --- (a) no signature ---------------------------------------------------------------------


def test_field_packet_with_namespaceless_signature_is_missing_and_says_why() -> None:
    """The 2019 field packet's Signature lacks the xmldsig namespace: the answer says exactly so."""
    detail = refused(signers.FIELD_2019.read_bytes(), SignatureMissing, "")
    assert detail == (f"Signature element is in namespace '{EDXML_NS}', not the XML-DSig namespace")


def test_signature_in_no_namespace_is_missing_and_says_so() -> None:
    """A Signature with xmlns="" is reported as being in no namespace."""
    xml = signers.unsigned_package().replace(
        signers.PLACEHOLDER.encode(), b'<Signature xmlns=""><SignedInfo/></Signature>'
    )
    detail = refused(xml, SignatureMissing, "")
    assert detail == "Signature element is in no namespace, not the XML-DSig namespace"


def test_unsigned_package_is_missing() -> None:
    """A package with no Signature at all is signature_missing, naming the namespace looked for."""
    xml = signers.unsigned_package().replace(signers.PLACEHOLDER.encode(), b"")
    refused(xml, SignatureMissing, signing.DSIG)


# --- (b) structure: one signature, one whole-package reference ------------------------------


def test_tampered_text_is_invalid() -> None:
    """One character of a text node changed after signing: signature_invalid."""
    xml = _GOOD.replace("Thông tư".encode(), "Thông tu".encode(), 1)
    assert xml != _GOOD
    refused(xml, SignatureInvalid, "DigestValue")


def test_tampered_recipient_is_invalid() -> None:
    """Re-addressing a signed package to another agency breaks it."""
    to = _GOOD.index(b"<edXML:To>")
    xml = _GOOD[:to] + _GOOD[to:].replace(b"000.00.15.H51", b"000.00.00.H26", 1)
    refused(xml, SignatureInvalid, "DigestValue")


def test_signed_package_wrapped_in_a_new_root_is_invalid() -> None:
    """The classic wrapping attack: the signed package moved under a new root beside new content."""
    evil = f'<edXML:edXMLEnvelope xmlns:edXML="{EDXML_NS}"/>'.encode()
    refused(signers.wrap_in_envelope(_GOOD, evil), SignatureInvalid, "DigestValue")


def test_second_copy_of_the_signed_content_is_invalid() -> None:
    """A second, edited edXMLEnvelope added beside the signed one: signature_invalid."""
    refused(signers.duplicate_signed_content(_GOOD), SignatureInvalid, "DigestValue")


def test_signature_moved_out_of_the_header_is_invalid() -> None:
    """Moving the signature (with its whitespace) changes what was signed: signature_invalid."""
    root = etree.fromstring(_GOOD)
    signature = signers.signature_of(root)
    root.append(signature)  # lxml takes the tail whitespace along, as an editor would
    refused(signers.serialize(root), SignatureInvalid, "DigestValue")


def test_double_signed_package_is_invalid() -> None:
    """Two ds:Signature elements: signature_invalid, naming the count."""
    xml = signers.double_sign(_GOOD, _OTHER_AGENCY.key_pem, _OTHER_AGENCY.cert_pem)
    refused(xml, SignatureInvalid, "2 ds:Signature elements")


def test_enveloping_signature_as_root_is_invalid() -> None:
    """A ds:Signature that is the document itself is not an enveloped package signature."""
    root = etree.fromstring(_GOOD)
    signature = signers.signature_of(root)
    refused(signers.serialize(signature), SignatureInvalid, "root element")


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("#x", "Reference URI is '#x'"),
        ("#xpointer(/)", "Reference URI is '#xpointer(/)'"),
        ("http://example.org/package.xml", "Reference URI is 'http://example.org/package.xml'"),
        (None, "has no URI attribute"),
    ],
)
def test_reference_to_anything_but_the_whole_package_is_invalid(uri: str | None, said: str) -> None:
    """Only URI="" (the whole package) is accepted: fragments and external URIs are refused."""
    xml = signers.resign(_GOOD, _SENDER.key_pem, signers.set_reference_uri(uri))
    refused(xml, SignatureInvalid, said)


def test_reference_to_an_element_by_id_is_invalid_even_when_valid() -> None:
    """A validly signed URI="#id" reference (covering only part of the package) is refused."""
    unsigned = signers.unsigned_package().replace(
        b"<edXML:edXMLEnvelope ", b'<edXML:edXMLEnvelope Id="env" ', 1
    )
    xml = signers.sign_part(unsigned, _SENDER.key_pem, _SENDER.cert_pem, "#env")
    refused(xml, SignatureInvalid, "Reference URI is '#env'")


def test_extra_reference_is_invalid() -> None:
    """A second Reference, even a valid one over the same package, is refused."""
    xml = signers.resign(_GOOD, _SENDER.key_pem, signers.add_reference(""))
    refused(xml, SignatureInvalid, "SignedInfo has 2 Reference elements")


@pytest.mark.parametrize(
    ("transforms", "said"),
    [
        ((signers.ENVELOPED, signers.XSLT), "(XSLT)"),
        ((signers.ENVELOPED, signers.XPATH), "(XPath)"),
        ((signers.XSLT,), "(XSLT)"),
        ((signers.EXC_C14N,), "enveloped-signature transform"),
        ((), "absent"),
        ((signers.ENVELOPED, signers.EXC_C14N, signers.C14N_10), "optionally followed by one"),
        ((signers.ENVELOPED, signers.ENVELOPED), "optionally followed by one"),
    ],
)
def test_transforms_other_than_enveloped_then_c14n_are_invalid(
    transforms: tuple[str, ...], said: str
) -> None:
    """Transforms are exactly enveloped-signature, optionally then one canonicalization."""
    xml = signers.resign(_GOOD, _SENDER.key_pem, signers.set_transforms(*transforms))
    refused(xml, SignatureInvalid, said)


def test_enveloped_transform_alone_passes() -> None:
    """enveloped-signature with no explicit canonicalization (C14N 1.0 implied) is accepted."""
    inclusive = signed(c14n=signers.C14N_10)
    verify(signers.resign(inclusive, _SENDER.key_pem, signers.set_transforms(signers.ENVELOPED)))


def test_unknown_signedinfo_canonicalization_is_invalid() -> None:
    """SignedInfo canonicalized by an unknown method is refused, naming it."""

    def mutate(signature: etree._Element) -> None:
        method = signature.find(
            f"{{{signers.DS}}}SignedInfo/{{{signers.DS}}}CanonicalizationMethod"
        )
        assert method is not None
        method.set("Algorithm", "urn:example:c14n")

    xml = signers.resign(_GOOD, _SENDER.key_pem, mutate)
    refused(xml, SignatureInvalid, "urn:example:c14n")


def test_comment_inside_signed_text_is_invalid() -> None:
    """A comment splitting a text node (invisible to the signature) is refused: readers differ."""
    xml = _GOOD.replace(b"<edXML:OrganId>000.00.15.H5", b"<edXML:OrganId>000.00.15.H5<!---->", 1)
    detail = refused(xml, SignatureInvalid, "inside the text of <OrganId>")
    assert "(line " in detail


# --- (c) algorithms -----------------------------------------------------------------------


def test_sha1_is_refused_unless_the_agency_allows_it() -> None:
    """rsa-sha1/sha1 is signature_algorithm by default, accepted for an allow_sha1 agency."""
    xml = signed(signature_algorithm="rsa-sha1", digest_algorithm="sha1")
    refused(xml, SignatureAlgorithm, "allow_sha1")
    assert verify(xml, allow_sha1=True).signature_algorithm == signing.RSA_SHA1


def test_sha1_digest_alone_is_refused_unless_allowed() -> None:
    """A SHA-1 reference digest under an RSA-SHA256 signature is refused the same way."""
    xml = signed(digest_algorithm="sha1")
    refused(xml, SignatureAlgorithm, "DigestMethod sha1")
    verify(xml, allow_sha1=True)


def test_ecdsa_sha1_is_refused_even_when_sha1_is_allowed() -> None:
    """allow_sha1 admits the field's rsa-sha1, nothing weaker or odder."""
    ident = pki.identity("p256")
    xml = signed(ident, signature_algorithm="ecdsa-sha1")
    refused(xml, SignatureAlgorithm, "ecdsa-sha1", [ident.cert], allow_sha1=True)


def test_hmac_signature_method_is_refused() -> None:
    """A shared-secret HMAC 'signature' proves nothing about the sender: signature_algorithm."""

    def mutate(signature: etree._Element) -> None:
        method = signature.find(f"{{{signers.DS}}}SignedInfo/{{{signers.DS}}}SignatureMethod")
        assert method is not None
        method.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")

    root = etree.fromstring(_GOOD)
    mutate(signers.signature_of(root))
    refused(signers.serialize(root), SignatureAlgorithm, "hmac-sha256")


def test_rsa_1024_key_is_refused() -> None:
    """A registered certificate with an RSA-1024 key: signature_algorithm, naming the size."""
    weak = pki.identity("rsa1024", common_name="000.00.00.G22 weak")
    refused(signed(weak), SignatureAlgorithm, "1024 bits", [weak.cert])


def test_p521_key_is_refused() -> None:
    """EC keys are accepted on P-256 and P-384 only."""
    ident = pki.identity("p521")
    xml = signed(ident, signature_algorithm="ecdsa-sha512")
    refused(xml, SignatureAlgorithm, "secp521r1", [ident.cert])


def test_signature_method_not_matching_the_key_is_invalid() -> None:
    """An ECDSA signature labelled rsa-sha256 does not hold: signature_invalid, saying why."""
    ident = pki.identity("p256")

    def relabel(signature: etree._Element) -> None:
        method = signature.find(f"{{{signers.DS}}}SignedInfo/{{{signers.DS}}}SignatureMethod")
        assert method is not None
        method.set("Algorithm", signing.RSA_SHA256)

    xml = signers.resign(signed(ident, signature_algorithm="ecdsa-sha256"), ident.key_pem, relabel)
    refused(xml, SignatureInvalid, "EC key", [ident.cert])


# --- (d) the signer -----------------------------------------------------------------------


def test_certificate_not_registered_is_untrusted() -> None:
    """Signed by a key whose certificate is not registered for the sender: untrusted_signer."""
    stranger = pki.identity("rsa2048", common_name="stranger", slot=2)
    detail = refused(signed(stranger), UntrustedSigner, "not registered")
    assert "CN=stranger" in detail


def test_certificate_of_another_agency_is_untrusted() -> None:
    """A valid certificate registered to another agency does not sign for this one."""
    refused(signed(_OTHER_AGENCY), UntrustedSigner, "000.00.00.H26 signer")


def test_no_registered_certificate_at_all_is_untrusted() -> None:
    """An agency with no certificate on file cannot have its packages accepted."""
    refused(_GOOD, UntrustedSigner, "not registered", [])


def test_registered_certificate_swapped_into_keyinfo_is_invalid() -> None:
    """Another key's signature with the sender's certificate pasted into KeyInfo does not hold."""
    xml = signers.swap_certificate(signed(_OTHER_AGENCY), _SENDER.cert_pem)
    refused(xml, SignatureInvalid, "SignatureValue does not verify")


def test_signature_without_certificate_is_untrusted() -> None:
    """KeyInfo without the signer's X509Certificate: untrusted_signer."""
    refused(signers.drop_key_info(_GOOD), UntrustedSigner, "X509Certificate")


def test_garbled_certificate_is_untrusted() -> None:
    """An X509Certificate that is not base64 is reported as such."""
    root = etree.fromstring(_GOOD)
    certificate = signers.signature_of(root).find(f".//{{{signers.DS}}}X509Certificate")
    assert certificate is not None
    certificate.text = "not*base64"
    refused(signers.serialize(root), UntrustedSigner, "not valid base64")


def test_expired_certificate_is_untrusted() -> None:
    """A registered certificate past its validity at receipt time: untrusted_signer."""
    old = pki.identity("rsa2048", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    refused(signed(old), UntrustedSigner, "expired on", [old.cert])


def test_not_yet_valid_certificate_is_untrusted() -> None:
    """A registered certificate whose validity starts after receipt time: untrusted_signer."""
    early = pki.identity("rsa2048", not_before=NOW + DAY, not_after=NOW + 400 * DAY)
    refused(signed(early), UntrustedSigner, "not valid before", [early.cert])


def test_validity_is_judged_at_the_given_time() -> None:
    """Validity is checked at ``now`` (receipt time), not at the wall clock."""
    old = pki.identity("rsa2048", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    verify(signed(old), [old.cert], now=NOW - 2 * DAY)


def test_naive_time_is_a_programming_error() -> None:
    """Passing a naive datetime is refused loudly rather than compared wrongly."""
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(_GOOD, now=dt.datetime(2026, 1, 1))


# --- verification leaves the tree alone -----------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(_GOOD, id="good"),
        pytest.param(_GOOD.replace(b"PRO-TEST-CASE1", b"PRO-TEST-CASE2"), id="tampered"),
        pytest.param(signed(_OTHER_AGENCY), id="untrusted"),
        pytest.param(signers.FIELD_2019.read_bytes(), id="field-2019"),
    ],
)
def test_verification_never_alters_the_tree(xml: bytes) -> None:
    """The package stored is exactly the one verified: verification does not touch the tree."""
    tree = parse(xml)
    before = etree.tostring(tree)
    with contextlib.suppress(AxisError):
        signing.verify_package(tree, trusted=[_SENDER.cert], allow_sha1=False, now=NOW)
    assert etree.tostring(tree) == before


def _text_offsets(xml: bytes) -> list[int]:
    """Byte offsets of non-blank text content outside the ds:Signature element."""
    start = xml.index(b"<ds:Signature")
    end = xml.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    offsets: list[int] = []
    for match in re.finditer(rb">([^<]+)<", xml):
        if start <= match.start() < end:
            continue
        offsets.extend(i for i in range(match.start(1), match.end(1)) if xml[i] not in b" \t\r\n")
    return offsets


_OFFSETS = _text_offsets(_GOOD)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.sampled_from(_OFFSETS), value=st.integers(0, 255))
def test_flipping_any_byte_of_signed_text_never_verifies(position: int, value: int) -> None:
    """Any single-byte change to the signed text is caught (or the package no longer parses)."""
    if value == _GOOD[position]:
        value ^= 0x01
    xml = _GOOD[:position] + bytes([value]) + _GOOD[position + 1 :]
    try:
        tree = parse(xml)
    except etree.XMLSyntaxError:
        return
    with pytest.raises(SignatureInvalid):
        signing.verify_package(tree, trusted=[_SENDER.cert], allow_sha1=False, now=NOW)


# --- the axis's own signature -------------------------------------------------------------


def _receipt() -> etree._Element:
    ns = "urn:example:axis-receipt"
    root = etree.Element(f"{{{ns}}}Receipt", nsmap={None: ns})  # type: ignore[dict-item]
    etree.SubElement(root, f"{{{ns}}}MessageId").text = "01JZ0000000000000000000000"
    etree.SubElement(root, f"{{{ns}}}From").text = "000.00.00.G22"
    etree.SubElement(root, f"{{{ns}}}Subject").text = "Về việc liên thông văn bản"
    return root


@pytest.fixture(scope="module")
def axis_key(axis_key_pair: tuple[bytes, bytes]) -> signing.AxisKey:
    return signing.AxisKey.load(*axis_key_pair)


def test_generated_axis_key_is_rsa_3072_self_signed(axis_key_pair: tuple[bytes, bytes]) -> None:
    """generate_axis_key gives an RSA-3072 key and a self-signed certificate for it."""
    key_pem, cert_pem = axis_key_pair
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.public_key().key_size == 3072  # type: ignore[union-attr]
    assert cert.issuer == cert.subject
    assert b"PRIVATE KEY" in key_pem
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= dt.timedelta(days=3650)


def test_receipt_verifies_with_the_axis_policy_and_signxml(axis_key: signing.AxisKey) -> None:
    """A receipt signed by the axis verifies with python-xmlsec and with signxml, independently."""
    data = axis_key.sign_enveloped(_receipt())
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    signer = verify(data, [axis_key.certificate])
    assert signer.signature_algorithm == signing.RSA_SHA256
    cert = x509.load_pem_x509_certificate(axis_key.cert_pem)
    result = XMLVerifier().verify(data, x509_cert=cert)
    assert not isinstance(result, list)
    assert result.signed_xml is not None
    assert result.signed_xml.findtext("{*}From") == "000.00.00.G22"


def test_ecdsa_axis_key_signs_receipts_too() -> None:
    """An EC P-256 axis key signs with ECDSA-SHA256, verifiable by both engines."""
    ident = pki.identity("p256", common_name="axis-ec")
    key = signing.AxisKey.load(ident.key_pem, ident.cert_pem)
    data = key.sign_enveloped(_receipt())
    assert verify(data, [ident.cert]).signature_algorithm == signing.ECDSA_SHA256
    XMLVerifier().verify(data, x509_cert=ident.cert)


def test_tampered_receipt_fails(axis_key: signing.AxisKey) -> None:
    """Changing a signed receipt is detected."""
    data = axis_key.sign_enveloped(_receipt()).replace(b"000.00.00.G22", b"000.00.00.G23")
    refused(data, SignatureInvalid, "DigestValue", [axis_key.certificate])


def test_axis_key_must_match_its_certificate(axis_key_pair: tuple[bytes, bytes]) -> None:
    """Loading a key with someone else's certificate fails at start-up, not at first receipt."""
    with pytest.raises(ValueError, match="does not match"):
        signing.AxisKey.load(axis_key_pair[0], _SENDER.cert_pem)


def test_axis_key_refuses_weak_keys() -> None:
    """The axis will not sign with a key its own policy would refuse."""
    weak = pki.identity("rsa1024")
    with pytest.raises(ValueError, match="1024 bits"):
        signing.AxisKey.load(weak.key_pem, weak.cert_pem)


def test_sign_enveloped_needs_the_document_root(axis_key: signing.AxisKey) -> None:
    """URI="" signs the whole document, so signing a subtree is refused."""
    root = _receipt()
    with pytest.raises(ValueError, match="root"):
        axis_key.sign_enveloped(root[0])


def test_sign_enveloped_refuses_a_signed_document(axis_key: signing.AxisKey) -> None:
    """The axis never produces a second signature its own policy would refuse."""
    root = _receipt()
    axis_key.sign_enveloped(root)
    with pytest.raises(ValueError, match="already signed"):
        axis_key.sign_enveloped(root)


def _xmlsec1_version() -> tuple[int, ...]:
    out = subprocess.run(["xmlsec1", "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout)
    assert found is not None
    return tuple(int(part) for part in found.groups())


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed")
def test_receipt_verifies_with_the_xmlsec1_command(
    axis_key: signing.AxisKey, tmp_path: Path
) -> None:
    """The documented offline check, xmlsec1 --verify with the axis certificate, succeeds."""
    (tmp_path / "axis.pem").write_bytes(axis_key.cert_pem)
    (tmp_path / "receipt.xml").write_bytes(axis_key.sign_enveloped(_receipt()))
    (tmp_path / "forged.xml").write_bytes(
        (tmp_path / "receipt.xml").read_bytes().replace(b"000.00.00.G22", b"000.00.00.G23")
    )
    # xmlsec1 1.3 looks keys up strictly by KeyInfo; --lax-key-search restores 1.2's behaviour.
    lax = ["--lax-key-search"] if _xmlsec1_version() >= (1, 3) else []
    for how in (["--pubkey-cert-pem", "axis.pem", *lax], ["--trusted-pem", "axis.pem"]):
        good = subprocess.run(
            ["xmlsec1", "--verify", *how, "receipt.xml"], cwd=tmp_path, capture_output=True
        )
        assert good.returncode == 0, good.stderr.decode()
        forged = subprocess.run(
            ["xmlsec1", "--verify", *how, "forged.xml"], cwd=tmp_path, capture_output=True
        )
        assert forged.returncode != 0


@pytest.mark.parametrize(
    ("where", "inserted"),
    [
        (
            b"</ds:Signature>",
            b'<ds:Object><edXML:To xmlns:edXML="' + EDXML_NS.encode() + b'"><edXML:OrganId>'
            b"000.00.00.H29</edXML:OrganId></edXML:To></ds:Object></ds:Signature>",
        ),
        (b"</ds:Signature>", b"free text the signature does not cover</ds:Signature>"),
        (
            b"</ds:KeyInfo>",
            b'<e:Attachment xmlns:e="' + EDXML_NS.encode() + b'">evil</e:Attachment></ds:KeyInfo>',
        ),
    ],
    ids=["object-with-a-recipient", "free-text", "attachment-in-keyinfo"],
)
def test_content_hidden_inside_the_signature_element_is_refused(
    where: bytes, inserted: bytes
) -> None:
    """What sits inside ds:Signature is outside the digest: anything but DSig is refused."""
    assert where in _GOOD
    refused(_GOOD.replace(where, inserted, 1), SignatureInvalid, "not covered by the signature")
