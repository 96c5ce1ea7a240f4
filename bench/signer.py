"""Sign thousands of packages quickly, with the same signature shape the tests' signer makes.

The benchmark needs tens of thousands of distinct signed packages, and signxml (what
``tests/support/signers.py`` uses, on purpose an implementation independent of the axis's
verifier) takes about 50 ms a package: half an hour of preparation. So one package is signed
with signxml, and its ``ds:Signature`` serves as the template for the rest: for each package
the reference digest (enveloped-signature + exclusive C14N over the whole document) and the
RSA signature over the canonical ``SignedInfo`` are recomputed with lxml and ``cryptography``,
about 1 ms. The result has exactly the elements, algorithms and certificate signxml produced;
the benchmark checks one of each batch with ``axis.signing.verify_package`` before using it,
and the server's 201s confirm the rest.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_NS = {"ds": DS}
# Large packages: lxml refuses text nodes over 10 MB unless told otherwise.
_PARSER = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)


@dataclass(frozen=True)
class Template:
    """A signxml-made ``ds:Signature`` (as XML) and the private key that goes with its cert."""

    signature_xml: bytes
    key_pem: bytes


def make_template(unsigned: bytes, key_pem: bytes, cert_pem: bytes) -> Template:
    """Sign ``unsigned`` once with the tests' signer and keep its signature element.

    Checks the shape this module knows how to reproduce, so a change in the tests' signer
    fails here, loudly, rather than as 400s in the middle of a measurement.
    """
    from tests.support import signers

    signed = signers.sign(unsigned, key_pem, cert_pem)
    root = etree.fromstring(signed, _PARSER)
    signature = signers.signature_of(root)
    algorithms = [
        e.get("Algorithm")
        for e in signature.iter(
            f"{{{DS}}}CanonicalizationMethod",
            f"{{{DS}}}SignatureMethod",
            f"{{{DS}}}Transform",
            f"{{{DS}}}DigestMethod",
        )
    ]
    expected = [EXC_C14N, RSA_SHA256, ENVELOPED, EXC_C14N, SHA256]
    if algorithms != expected:
        raise RuntimeError(f"unexpected signature shape from the tests' signer: {algorithms}")
    signature.tail = None
    return Template(etree.tostring(signature), key_pem)


class FastSigner:
    """Re-signs packages with a template's signature; one per process (keys don't pickle)."""

    def __init__(self, template: Template) -> None:
        self._signature = etree.fromstring(template.signature_xml, _PARSER)
        key = serialization.load_pem_private_key(template.key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the fast signer handles RSA keys only")
        self._key = key

    def sign(self, unsigned: bytes) -> bytes:
        """Sign a package carrying ``<ds:Signature Id="placeholder"/>`` where it must go."""
        root = etree.fromstring(unsigned, _PARSER)
        found = root.findall(".//ds:Signature", _NS)
        if len(found) != 1:
            raise ValueError(f"expected one placeholder ds:Signature, found {len(found)}")
        placeholder = found[0]
        parent = placeholder.getparent()
        assert parent is not None
        index = parent.index(placeholder)
        previous = placeholder.getprevious()
        tail = placeholder.tail or ""
        before = (previous.tail if previous is not None else parent.text) or ""
        # The enveloped-signature transform drops the element but keeps the text after it:
        # remove the placeholder and join its tail to the text before it, as the verifier sees.
        parent.remove(placeholder)
        if previous is not None:
            previous.tail = before + tail
        else:
            parent.text = before + tail
        canonical = etree.tostring(root.getroottree(), method="c14n", exclusive=True)
        digest = base64.b64encode(hashlib.sha256(canonical).digest()).decode()
        # Put the text back as it was and the real signature where the placeholder was.
        if previous is not None:
            previous.tail = before or None
        else:
            parent.text = before or None
        signature = copy.deepcopy(self._signature)
        signature.tail = tail or None
        parent.insert(index, signature)
        signed_info = signature.find("ds:SignedInfo", _NS)
        digest_value = signature.find("ds:SignedInfo/ds:Reference/ds:DigestValue", _NS)
        value = signature.find("ds:SignatureValue", _NS)
        assert signed_info is not None
        assert digest_value is not None
        assert value is not None
        digest_value.text = digest
        info = etree.tostring(signed_info, method="c14n", exclusive=True)
        raw = self._key.sign(info, padding.PKCS1v15(), hashes.SHA256())
        value.text = base64.b64encode(raw).decode()
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


_worker: FastSigner | None = None


def pool_init(template: Template) -> None:
    """``multiprocessing`` initializer: one signer per pool process."""
    global _worker
    _worker = FastSigner(template)


def pool_sign(batch: list[bytes]) -> list[bytes]:
    """Sign a batch in a pool process (batches keep the pickling overhead small)."""
    assert _worker is not None
    return [_worker.sign(doc) for doc in batch]
