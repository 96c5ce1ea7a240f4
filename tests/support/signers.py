"""Sign test packages with signxml, an implementation independent of the axis's verifier.

The axis verifies with python-xmlsec (libxmlsec1); a fixture signed by the same library
would hide any bug the two share, so every fixture here is made by signxml, and the bad
cases (extra references, XSLT, swapped certificates, wrapping) are made by editing a good
signature and re-signing its ``SignedInfo`` with the ``cryptography`` package directly, so
each bad case is cryptographically sound and only the policy can refuse it.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

DS = "http://www.w3.org/2000/09/xmldsig#"
EDXML = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
PLACEHOLDER = f'<ds:Signature xmlns:ds="{DS}" Id="placeholder"/>'

FIELD_2019 = Path(__file__).resolve().parents[1] / "data" / "samples" / "field-2019-trial.edxml"

_NS = {"ds": DS}
_SIGNATURE_RE = re.compile(rb"<Signature>.*</Signature>", re.DOTALL)
_ATTACHMENT_RE = re.compile(rb"<edXML:ContentTransferEncoded[^>]*>([^<]*)<")


class _Sha1TolerantSigner(XMLSigner):
    """signxml refuses to make SHA-1 signatures; the field still sends them, so tests must."""

    def check_deprecated_methods(self) -> None:
        return None


def ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


def unsigned_package(size: int | None = None) -> bytes:
    """The 2019 field packet with its namespace-less signature replaced by a placeholder.

    ``size`` pads the attachment's base64 so the package is about that many bytes: the
    benchmark and the large-package tests need 8 KB and 1 MB packages of the real shape.
    """
    data = FIELD_2019.read_bytes()
    data = _SIGNATURE_RE.sub(PLACEHOLDER.encode(), data, count=1)
    if size is not None and size > len(data):
        content = _ATTACHMENT_RE.search(data)
        assert content is not None
        want = size - len(data) + len(content.group(1))
        raw = base64.b64encode(bytes(range(256)) * (want // 340 + 1))
        lines = [raw[i : i + 76] for i in range(0, want * 76 // 77, 76)]
        data = data[: content.start(1)] + b"\n".join(lines) + data[content.end(1) :]
    return data


def sign(
    xml: bytes,
    key_pem: bytes,
    cert_pem: bytes,
    *,
    signature_algorithm: str = "rsa-sha256",
    digest_algorithm: str = "sha256",
    c14n: str = EXC_C14N,
    chain: list[bytes] | None = None,
) -> bytes:
    """Sign ``xml`` enveloped over the whole document (``URI=""``) with signxml.

    The signature replaces ``<ds:Signature Id="placeholder"/>`` when the document has one
    (edXML puts it in ``edXMLHeader``), else it becomes the last child of the root.
    ``chain`` adds further certificates after the signer's in ``X509Data``.
    """
    signer = _Sha1TolerantSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
        c14n_algorithm=c14n,
    )
    root = etree.fromstring(xml)
    certs = [cert_pem.decode(), *(c.decode() for c in chain or [])]
    signed = signer.sign(root, key=key_pem, cert=certs)
    return serialize(signed)


def sign_part(xml: bytes, key_pem: bytes, cert_pem: bytes, uri: str) -> bytes:
    """A valid enveloped signature over only the element ``uri`` (``#id``) names.

    Sound XML-DSig, and exactly what the policy refuses: the rest of the package would travel
    unsigned beside it.
    """
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped, c14n_algorithm=EXC_C14N)
    root = etree.fromstring(xml)
    return serialize(signer.sign(root, key=key_pem, cert=cert_pem.decode(), reference_uri=uri))


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def signature_of(root: etree._Element) -> etree._Element:
    found = root.findall(".//ds:Signature", _NS)
    assert len(found) == 1, f"expected one ds:Signature, found {len(found)}"
    return found[0]


def resign(
    signed: bytes,
    key_pem: bytes,
    mutate: Callable[[etree._Element], None],
) -> bytes:
    """Apply ``mutate`` to the document's ``ds:Signature``, then sign its ``SignedInfo`` again.

    The new ``SignatureValue`` is computed with ``cryptography`` over the canonical form
    named by ``SignedInfo/CanonicalizationMethod``, so whatever ``mutate`` did to
    ``SignedInfo`` (an extra reference, another transform, another URI) is validly signed.
    """
    root = etree.fromstring(signed)
    signature = signature_of(root)
    mutate(signature)
    _sign_signed_info(signature, key_pem)
    return serialize(root)


def _sign_signed_info(signature: etree._Element, key_pem: bytes) -> None:
    signed_info = signature.find("ds:SignedInfo", _NS)
    assert signed_info is not None
    c14n_method = signed_info.find("ds:CanonicalizationMethod", _NS)
    assert c14n_method is not None
    algorithm = c14n_method.get("Algorithm", "")
    canonical = etree.tostring(
        signed_info,
        method="c14n",
        exclusive=algorithm.startswith(EXC_C14N),
        with_comments=algorithm.endswith("#WithComments"),
    )
    method = signed_info.find("ds:SignatureMethod", _NS)
    assert method is not None
    fragment = method.get("Algorithm", "").rsplit("#", 1)[1]
    hash_name = fragment.rsplit("-", 1)[1]
    digest: hashes.HashAlgorithm = {
        "sha1": hashes.SHA1(),
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }[hash_name]
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(canonical, padding.PKCS1v15(), digest)
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(canonical, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    value = signature.find("ds:SignatureValue", _NS)
    assert value is not None
    value.text = base64.b64encode(raw).decode()


# --- the bad cases -----------------------------------------------------------------------


def add_reference(uri: str = "") -> Callable[[etree._Element], None]:
    """A mutation adding a second ``Reference`` (a copy of the first with ``uri``)."""

    def mutate(signature: etree._Element) -> None:
        first = signature.find("ds:SignedInfo/ds:Reference", _NS)
        assert first is not None
        extra = copy.deepcopy(first)
        extra.set("URI", uri)
        first.addnext(extra)

    return mutate


def set_reference_uri(uri: str | None) -> Callable[[etree._Element], None]:
    """A mutation giving the one ``Reference`` another ``URI`` (``None`` drops it)."""

    def mutate(signature: etree._Element) -> None:
        reference = signature.find("ds:SignedInfo/ds:Reference", _NS)
        assert reference is not None
        if uri is None:
            del reference.attrib["URI"]
        else:
            reference.set("URI", uri)

    return mutate


def set_transforms(*algorithms: str) -> Callable[[etree._Element], None]:
    """A mutation replacing the reference's transforms with ``algorithms``.

    An XSLT transform gets a stylesheet child and an XPath one an expression, as real
    attack packages carry them.
    """

    def mutate(signature: etree._Element) -> None:
        transforms = signature.find("ds:SignedInfo/ds:Reference/ds:Transforms", _NS)
        assert transforms is not None
        for child in list(transforms):
            transforms.remove(child)
        for algorithm in algorithms:
            transform = etree.SubElement(transforms, ds("Transform"), Algorithm=algorithm)
            if algorithm == XSLT:
                sheet = etree.SubElement(
                    transform,
                    "{http://www.w3.org/1999/XSL/Transform}stylesheet",
                    version="1.0",
                )
                etree.SubElement(sheet, "{http://www.w3.org/1999/XSL/Transform}template")
            elif algorithm == XPATH:
                etree.SubElement(
                    transform, ds("XPath")
                ).text = "not(ancestor-or-self::ds:Signature)"

    return mutate


def swap_certificate(signed: bytes, cert_pem: bytes) -> bytes:
    """Put another certificate in ``KeyInfo`` without re-signing (the cert-swap attack)."""
    root = etree.fromstring(signed)
    element = signature_of(root).find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS)
    assert element is not None
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    element.text = base64.b64encode(der).decode()
    return serialize(root)


def drop_key_info(signed: bytes) -> bytes:
    """Remove ``KeyInfo`` (it is outside ``SignedInfo``: the signature value still holds)."""
    root = etree.fromstring(signed)
    signature = signature_of(root)
    key_info = signature.find("ds:KeyInfo", _NS)
    assert key_info is not None
    signature.remove(key_info)
    return serialize(root)


def double_sign(signed: bytes, key_pem: bytes, cert_pem: bytes) -> bytes:
    """Sign an already signed package again: two ``ds:Signature`` elements."""
    root = etree.fromstring(signed)
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped, c14n_algorithm=EXC_C14N)
    return serialize(signer.sign(root, key=key_pem, cert=cert_pem.decode()))


def wrap_in_envelope(signed: bytes, evil: bytes) -> bytes:
    """The classic wrapping attack: the signed package moved inside a new root with new content.

    Its signature is carried along unchanged: a verifier that looked only for "a valid
    signature somewhere" would accept the attacker's ``evil`` element.
    """
    original = etree.fromstring(signed)
    wrapper = etree.Element(f"{{{EDXML}}}edXML", nsmap={None: EDXML})  # type: ignore[dict-item]
    wrapper.append(etree.fromstring(evil))
    hidden = etree.SubElement(wrapper, f"{{{EDXML}}}Object")
    hidden.append(original)
    return serialize(wrapper)


def move_signature_to_root(signed: bytes) -> bytes:
    """Move the ``ds:Signature`` from ``edXMLHeader`` to the end of the root."""
    root = etree.fromstring(signed)
    signature = signature_of(root)
    parent = signature.getparent()
    assert parent is not None
    tail = signature.tail
    previous = signature.getprevious()
    parent.remove(signature)
    # lxml moves the tail along with the element: put it back where it was.
    if previous is not None:
        previous.tail = (previous.tail or "") + (tail or "")
    else:
        parent.text = (parent.text or "") + (tail or "")
    signature.tail = None
    root.append(signature)
    return serialize(root)


def duplicate_signed_content(signed: bytes) -> bytes:
    """Append a second, edited copy of ``edXMLEnvelope`` after the signed one."""
    root = etree.fromstring(signed)
    envelope = root.find(f"{{{EDXML}}}edXMLEnvelope")
    assert envelope is not None
    clone = copy.deepcopy(envelope)
    for sig in clone.iter(ds("Signature")):
        parent = sig.getparent()
        assert parent is not None
        parent.remove(sig)
    organ = clone.find(f".//{{{EDXML}}}To/{{{EDXML}}}OrganId")
    assert organ is not None
    organ.text = "000.00.00.H99"
    envelope.addnext(clone)
    return serialize(root)
