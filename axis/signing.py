"""The signature policy: verify an agency's package, sign the axis's own receipts.

Why a policy and not just "does the signature verify": XML-DSig lets a valid signature cover
only part of a document (a ``#id`` reference, an XPath or XSLT transform), so a document can
carry a perfectly valid signature next to unsigned content that a router would act on (the
wrapping attacks). The axis routes and stores whole packages, so it accepts exactly one
shape: one ``ds:Signature`` whose one ``Reference URI=""`` covers the whole package through
the enveloped-signature transform and at most one canonicalization, made with an algorithm
and key of today's strength, by a certificate registered for the sender. Each way of missing
that shape has its own error and a detail that tells the sender what to fix.

The checks run in a fixed order, cheapest and most telling first: presence, structure,
algorithms, signer, then the cryptography. The engine is python-xmlsec (libxmlsec1): it
measured about twice as fast as signxml on 8 KB and 1 MB packages, verifies the tree in place
where signxml serializes and re-parses the whole document twice, and releases the GIL, so
large packages verified in a worker thread use the second core (``bench/signature_compare.py``).

Verification never alters the tree: libxmlsec1 reads the document, and nothing here writes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from lxml import etree

from axis.errors import SignatureAlgorithm, SignatureInvalid, SignatureMissing, UntrustedSigner

if TYPE_CHECKING:
    from xmlsec.constants import __Transform as XmlsecTransform

_X = xmlsec.constants  # typed names for libxmlsec1's transforms and key formats

DSIG = "http://www.w3.org/2000/09/xmldsig#"
_EC_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_COMMENTS = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
C14N11_COMMENTS = "http://www.w3.org/2006/12/xml-c14n11#WithComments"

RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"

SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

_SIGNATURE = f"{{{DSIG}}}Signature"

KeyKind = Literal["RSA", "EC"]


def _ds(tag: str) -> str:
    return f"{{{DSIG}}}{tag}"


def _children(parent: etree._Element, tag: str) -> list[etree._Element]:
    """``parent``'s ds:``tag`` children (lxml's C-level iteration; ``findall`` with a
    namespace map costs several microseconds a call, which adds up per package)."""
    return list(parent.iterchildren(_ds(tag)))


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    return next(parent.iterchildren(_ds(tag)), None)


# The canonicalizations a SignedInfo or a Reference may name, and libxmlsec1's transform.
_CANONICALIZATIONS: dict[str, XmlsecTransform] = {
    C14N: _X.TransformInclC14N,
    C14N_COMMENTS: _X.TransformInclC14NWithComments,
    EXC_C14N: _X.TransformExclC14N,
    EXC_C14N_COMMENTS: _X.TransformExclC14NWithComments,
    C14N11: _X.TransformInclC14N11,
    C14N11_COMMENTS: _X.TransformInclC14N11WithComments,
}


@dataclass(frozen=True, slots=True)
class _Method:
    name: str
    kind: KeyKind
    transform: XmlsecTransform
    hash: type[hashes.HashAlgorithm]


_SIGNATURE_METHODS: dict[str, _Method] = {
    RSA_SHA256: _Method("rsa-sha256", "RSA", _X.TransformRsaSha256, hashes.SHA256),
    RSA_SHA384: _Method("rsa-sha384", "RSA", _X.TransformRsaSha384, hashes.SHA384),
    RSA_SHA512: _Method("rsa-sha512", "RSA", _X.TransformRsaSha512, hashes.SHA512),
    ECDSA_SHA256: _Method("ecdsa-sha256", "EC", _X.TransformEcdsaSha256, hashes.SHA256),
    ECDSA_SHA384: _Method("ecdsa-sha384", "EC", _X.TransformEcdsaSha384, hashes.SHA384),
    ECDSA_SHA512: _Method("ecdsa-sha512", "EC", _X.TransformEcdsaSha512, hashes.SHA512),
}
_SHA1_SIGNATURE = _Method("rsa-sha1", "RSA", _X.TransformRsaSha1, hashes.SHA1)

_DIGESTS: dict[str, XmlsecTransform] = {
    SHA256: _X.TransformSha256,
    SHA384: _X.TransformSha384,
    SHA512: _X.TransformSha512,
}

# Transforms a sender might try, named so the refusal says what was found.
_TRANSFORM_NAMES = {
    "http://www.w3.org/TR/1999/REC-xslt-19991116": "XSLT",
    "http://www.w3.org/TR/1999/REC-xpath-19991116": "XPath",
    "http://www.w3.org/2002/06/xmldsig-filter2": "XPath Filter 2.0",
    "http://www.w3.org/2000/09/xmldsig#base64": "base64",
    "http://www.w3.org/2002/07/decrypt#XML": "decryption",
}

_ACCEPTED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed an accepted package, as the audit trail records it."""

    certificate_sha256: str  # hex of the DER certificate
    subject: str  # RFC 4514
    signature_algorithm: str  # the SignatureMethod URI


def carries_dsig(tree: etree._ElementTree) -> bool:
    """Whether the package holds a Signature element in the XML-DSig namespace (filled in or
    not). A connected system with ``signature: optional`` may send packages without one; a
    package that has one is held to the policy whatever its system's setting."""
    return next(tree.getroot().iter(_SIGNATURE), None) is not None


def verify_package(
    tree: etree._ElementTree,
    *,
    trusted: Sequence[x509.Certificate],
    allow_sha1: bool,
    now: dt.datetime,
) -> Signer:
    """Apply the signature policy to a parsed package and name its signer.

    ``trusted`` are the certificates registered for the sending agency; ``allow_sha1`` its
    registration flag; ``now`` (timezone-aware) the receipt time certificates must be valid
    at. Raises ``SignatureMissing``, ``SignatureInvalid``, ``SignatureAlgorithm`` or
    ``UntrustedSigner``, checked in that order of concern (see the module docstring).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    root = tree.getroot()
    signature = _the_signature(root)
    signed_info, reference, c14n_uris = _check_structure(signature)
    _check_filled_in(signature, reference)
    method, digest = _check_algorithms(signed_info, reference, allow_sha1=allow_sha1)
    der = _trusted_certificate(signature, trusted, now)
    key = _load_key(der)
    if key.problem is not None:
        raise SignatureAlgorithm(key.problem)
    if key.kind != method.kind:
        raise SignatureInvalid(
            f"SignatureMethod is {method.name} but the signing certificate holds an {key.kind} key"
        )
    _refuse_comments_in_text(root)
    _verify_cryptographically(signature, signed_info, key, method, digest, c14n_uris)
    return Signer(
        certificate_sha256=key.sha256,
        subject=key.subject,
        signature_algorithm=_method_uri(signed_info),
    )


# --- (a) presence and (b) structure -------------------------------------------------------


def _where(element: etree._Element) -> str:
    line = element.sourceline
    return f" (line {line})" if line else ""


def _the_signature(root: etree._Element) -> etree._Element:
    found = root.iter(_SIGNATURE)
    signature = next(found, None)
    if signature is None:
        stray = next(root.iter("{*}Signature"), None)
        if stray is None:
            raise SignatureMissing(
                f"the package has no Signature element in the XML-DSig namespace '{DSIG}'"
            )
        namespace = etree.QName(stray).namespace
        if namespace is None:
            raise SignatureMissing(
                "Signature element is in no namespace, not the XML-DSig namespace"
            )
        raise SignatureMissing(
            f"Signature element is in namespace '{namespace}', not the XML-DSig namespace"
        )
    others = list(found)
    if others:
        lines = ", ".join(str(s.sourceline) for s in [signature, *others] if s.sourceline)
        at = f" (lines {lines})" if lines else ""
        raise SignatureInvalid(
            f"the package has {len(others) + 1} ds:Signature elements{at}; "
            "the policy allows exactly one, over the whole package"
        )
    if signature.getparent() is None:
        raise SignatureInvalid(
            "ds:Signature is the document's root element; the policy requires an enveloped "
            "signature inside the package"
        )
    return signature


def _only(parent: etree._Element, tag: str) -> etree._Element:
    found = _children(parent, tag)
    if len(found) != 1:
        what = "no" if not found else str(len(found))
        raise SignatureInvalid(f"ds:{etree.QName(parent).localname} has {what} ds:{tag} elements")
    return found[0]


_SIGNATURE_PARTS = frozenset({"SignedInfo", "SignatureValue", "KeyInfo"})
_UNSIGNED_CONTAINERS = frozenset({"Object", "Manifest", "RetrievalMethod"})


def _check_nothing_unsigned_inside(signature: etree._Element) -> None:
    """Nothing but XML-DSig structure inside ``ds:Signature``.

    The enveloped transform leaves the whole Signature element out of the digest, so
    anything placed in it (a ``ds:Object`` holding a second ``To``, an attachment, free
    text) would be stored and delivered unsigned, and a recipient searching the package
    would find it. Only SignedInfo, SignatureValue and KeyInfo may stand there, every
    element in the XML-DSig namespace (or exclusive C14N's InclusiveNamespaces), and text
    only in leaf elements (digests, the signature value, certificates).
    """
    for child in signature:
        if not isinstance(child.tag, str):
            continue  # comments and PIs: no content, and out of the digest anyway
        if etree.QName(child).namespace != DSIG or etree.QName(child).localname not in (
            _SIGNATURE_PARTS
        ):
            raise SignatureInvalid(
                f"ds:Signature holds {_name(child)}{_where(child)}: only SignedInfo,"
                " SignatureValue and KeyInfo may stand there, since what is inside the"
                " Signature element is not covered by the signature"
            )
    for element in signature.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element)
        if name.namespace not in (DSIG, _EC_NS) or name.localname in _UNSIGNED_CONTAINERS:
            raise SignatureInvalid(
                f"{_name(element)}{_where(element)} inside ds:Signature is not allowed: what"
                " is inside the Signature element is not covered by the signature"
            )
        has_children = any(isinstance(c.tag, str) for c in element)
        if has_children and (element.text or "").strip():
            raise SignatureInvalid(
                f"text inside {_name(element)}{_where(element)} in ds:Signature: it is not"
                " covered by the signature"
            )
        if element is not signature and (element.tail or "").strip():
            raise SignatureInvalid(
                f"text after {_name(element)}{_where(element)} in ds:Signature: it is not"
                " covered by the signature"
            )


def _name(element: etree._Element) -> str:
    name = etree.QName(element)
    prefix = "ds:" if name.namespace == DSIG else ""
    return f"{prefix}{name.localname}" + (
        "" if prefix or not name.namespace else f" ({name.namespace})"
    )


def _check_structure(
    signature: etree._Element,
) -> tuple[etree._Element, etree._Element, list[str]]:
    """The one whole-package reference, or the precise way the signature departs from it."""
    signed_info = _only(signature, "SignedInfo")
    _only(signature, "SignatureValue")
    c14n = _only(signed_info, "CanonicalizationMethod").get("Algorithm", "")
    if c14n not in _CANONICALIZATIONS:
        raise SignatureInvalid(
            f"SignedInfo CanonicalizationMethod '{c14n}' is not C14N 1.0, C14N 1.1 or "
            "exclusive C14N"
        )
    references = _children(signed_info, "Reference")
    if len(references) != 1:
        uris = ", ".join(repr(r.get("URI")) for r in references)
        raise SignatureInvalid(
            f"SignedInfo has {len(references)} Reference elements ({uris or 'none'}); the "
            'policy allows exactly one, with URI="" (the whole package)'
        )
    reference = references[0]
    uri = reference.get("URI")
    if uri is None:
        raise SignatureInvalid(
            f'Reference{_where(reference)} has no URI attribute; the policy requires URI="" '
            "(the whole package)"
        )
    if uri != "":
        raise SignatureInvalid(
            f"Reference URI is '{uri}'{_where(reference)}; the policy requires URI=\"\" "
            "(the whole package), not a part of it or an external resource"
        )
    transforms = _check_transforms(reference)
    _check_nothing_unsigned_inside(signature)  # after the checks with more precise answers
    return signed_info, reference, [c14n, *transforms]


def _blank(element: etree._Element | None) -> bool:
    return element is not None and not "".join((element.text or "").split())


def _check_filled_in(signature: etree._Element, reference: etree._Element) -> None:
    """A signature template never signed is a missing signature, not an untrusted signer.

    The template every sender starts from carries empty ``SignatureValue``, ``DigestValue``
    and ``X509Certificate``; checked further, it would be refused for a certificate with the
    SHA-256 of nothing, which points the sender the wrong way.
    """
    if not _blank(_child(signature, "SignatureValue")):
        return
    empty = ["ds:SignatureValue"]
    if _blank(_child(reference, "DigestValue")):
        empty.append("ds:DigestValue")
    raise SignatureMissing(
        f"the signature is empty: sign the package ({' and '.join(empty)} hold no value: the"
        " ds:Signature is a template that was never signed)"
    )


def _check_transforms(reference: etree._Element) -> list[str]:
    """enveloped-signature, then at most one canonicalization: returns that one, if any."""
    container = _child(reference, "Transforms")
    transforms = [t for t in container if isinstance(t.tag, str)] if container is not None else []
    for transform in transforms:
        if transform.tag != _ds("Transform"):
            raise SignatureInvalid(f"Transforms holds an unexpected {transform.tag} element")
        algorithm = transform.get("Algorithm", "")
        if algorithm != ENVELOPED and algorithm not in _CANONICALIZATIONS:
            name = _TRANSFORM_NAMES.get(algorithm, "unknown")
            raise SignatureInvalid(
                f"Reference transform '{algorithm}' ({name}){_where(transform)} is not "
                "allowed: only enveloped-signature, optionally followed by one "
                "canonicalization"
            )
        extra = [c for c in transform if isinstance(c.tag, str)]
        allowed_child = algorithm.startswith(EXC_C14N) and all(
            c.tag == f"{{{_EC_NS}}}InclusiveNamespaces" for c in extra
        )
        if extra and not allowed_child:
            raise SignatureInvalid(
                f"Reference transform '{algorithm}'{_where(transform)} carries parameters "
                f"({etree.QName(extra[0]).localname}); the policy allows none"
            )
    algorithms = [str(t.get("Algorithm", "")) for t in transforms]
    if not algorithms or algorithms[0] != ENVELOPED:
        raise SignatureInvalid(
            f"Reference transforms are {_describe(algorithms)}; the policy requires the "
            f"enveloped-signature transform ({ENVELOPED}) first"
        )
    if len(algorithms) > 2 or algorithms[1:].count(ENVELOPED):
        raise SignatureInvalid(
            f"Reference transforms are {_describe(algorithms)}; the policy allows "
            "enveloped-signature optionally followed by one canonicalization"
        )
    return algorithms[1:]


def _describe(algorithms: list[str]) -> str:
    return "[" + ", ".join(algorithms) + "]" if algorithms else "absent"


# --- (c) algorithms -----------------------------------------------------------------------


def _method_uri(signed_info: etree._Element) -> str:
    method = _child(signed_info, "SignatureMethod")
    return "" if method is None else str(method.get("Algorithm", ""))


def _check_algorithms(
    signed_info: etree._Element, reference: etree._Element, *, allow_sha1: bool
) -> tuple[_Method, XmlsecTransform]:
    _only(signed_info, "SignatureMethod")
    uri = _method_uri(signed_info)
    method = _SIGNATURE_METHODS.get(uri)
    if method is None:
        if uri != RSA_SHA1:
            raise SignatureAlgorithm(
                f"SignatureMethod '{uri}' is not accepted: use RSA or ECDSA with SHA-256, "
                "SHA-384 or SHA-512"
            )
        if not allow_sha1:
            raise SignatureAlgorithm(
                f"SignatureMethod rsa-sha1 ('{uri}') uses SHA-1, accepted only for an agency "
                "registered with allow_sha1"
            )
        method = _SHA1_SIGNATURE
    digest_uri = str(_only(reference, "DigestMethod").get("Algorithm", ""))
    digest = _DIGESTS.get(digest_uri)
    if digest is None:
        if digest_uri != SHA1:
            raise SignatureAlgorithm(
                f"Reference DigestMethod '{digest_uri}' is not accepted: use SHA-256, "
                "SHA-384 or SHA-512"
            )
        if not allow_sha1:
            raise SignatureAlgorithm(
                f"Reference DigestMethod sha1 ('{digest_uri}') is SHA-1, accepted only for an "
                "agency registered with allow_sha1"
            )
        digest = _X.TransformSha1
    return method, digest


# --- (d) the signer -----------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _der(cert: x509.Certificate) -> bytes:
    """A pinned certificate's DER, encoded once: pins change seldom, packages arrive often."""
    return cert.public_bytes(serialization.Encoding.DER)


def _trusted_certificate(
    signature: etree._Element, trusted: Sequence[x509.Certificate], now: dt.datetime
) -> bytes:
    """The DER of the registered certificate carried in KeyInfo, valid at ``now``."""
    elements = [
        certificate
        for key_info in _children(signature, "KeyInfo")
        for x509_data in _children(key_info, "X509Data")
        for certificate in _children(x509_data, "X509Certificate")
    ]
    if not elements:
        raise UntrustedSigner(
            "the signature's KeyInfo carries no X509Data/X509Certificate: the signer's "
            "certificate must be in the signature"
        )
    registered = {_der(c): c for c in trusted}
    carried: list[bytes] = []
    for element in elements:
        text = "".join((element.text or "").split())
        if not text:
            raise UntrustedSigner(
                f"X509Certificate{_where(element)} in KeyInfo is empty: put the signing"
                " certificate (base64 DER) there"
            )
        try:
            carried.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise UntrustedSigner(
                f"X509Certificate{_where(element)} in KeyInfo is not valid base64"
            ) from None
    for der in carried:
        cert = registered.get(der)
        if cert is None:
            continue
        if now < cert.not_valid_before_utc:
            raise UntrustedSigner(
                f"the signing certificate '{cert.subject.rfc4514_string()}' is not valid before "
                f"{cert.not_valid_before_utc.isoformat()}"
            )
        if now > cert.not_valid_after_utc:
            raise UntrustedSigner(
                f"the signing certificate '{cert.subject.rfc4514_string()}' expired on "
                f"{cert.not_valid_after_utc.isoformat()}"
            )
        return der
    raise UntrustedSigner(
        f"the certificate in KeyInfo ({_identify(carried[0])}) is not registered for the "
        "sending agency"
    )


def _identify(der: bytes) -> str:
    try:
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return f"not a DER certificate, SHA-256 {hashlib.sha256(der).hexdigest()}"
    return f"subject '{subject}', SHA-256 {hashlib.sha256(der).hexdigest()}"


@dataclass(frozen=True, slots=True)
class _Key:
    """A registered certificate's key, checked and loaded once: building a libxmlsec1 key
    costs 30-80 µs here, more than the RSA-2048 verification itself (about 25 µs)."""

    sha256: str
    subject: str
    kind: KeyKind | None
    problem: str | None  # why the policy refuses this key, if it does
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None
    xmlsec_key: xmlsec.Key | None


@functools.lru_cache(maxsize=4096)
def _load_key(der: bytes) -> _Key:
    cert = x509.load_der_x509_certificate(der)
    public = cert.public_key()
    sha256 = hashlib.sha256(der).hexdigest()
    subject = cert.subject.rfc4514_string()
    if isinstance(public, rsa.RSAPublicKey):
        problem = None
        if public.key_size < 2048:
            problem = (
                f"the signing certificate's RSA key has {public.key_size} bits; the policy "
                "requires at least 2048"
            )
        return _Key(sha256, subject, "RSA", problem, public, _xmlsec_key(public))
    if isinstance(public, ec.EllipticCurvePublicKey):
        problem = None
        if public.curve.name not in _ACCEPTED_CURVES:
            problem = (
                f"the signing certificate's EC key is on curve {public.curve.name}; the "
                "policy accepts P-256 and P-384 only"
            )
        return _Key(sha256, subject, "EC", problem, public, _xmlsec_key(public))
    problem = (
        f"the signing certificate's key is {type(public).__name__}; the policy accepts RSA "
        "(at least 2048 bits) or EC P-256/P-384"
    )
    return _Key(sha256, subject, None, problem, None, None)


def _xmlsec_key(public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> xmlsec.Key:
    """The bare public key: a libxmlsec1 key built from the certificate carries its X.509
    data, which libxmlsec1 copies each time the key is handed to a context (30-70 µs a
    verification here, against 2 µs for the bare key)."""
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return xmlsec.Key.from_memory(spki, _X.KeyDataFormatDer)


# --- (e) what the signature covers, and the cryptography ----------------------------------


def _refuse_comments_in_text(root: etree._Element) -> None:
    """Refuse a comment that splits or borders text.

    A ``URI=""`` reference never covers comments (XML-DSig 4.4.3.3), so a comment can be
    added after signing without breaking the signature. Between elements that is inert;
    inside text it is not: ``<OrganId>000.00.00.G2<!---->2</OrganId>`` still verifies, yet a
    reader taking the element's first text node sees another agency.
    """
    for comment in root.iter(etree.Comment):
        parent = comment.getparent()
        if parent is None:
            continue
        previous = comment.getprevious()
        before = previous.tail if previous is not None else parent.text
        if (before and before.strip()) or (comment.tail and comment.tail.strip()):
            raise SignatureInvalid(
                f"a comment{_where(comment)} sits inside the text of "
                f"<{etree.QName(parent).localname}>: comments are not covered by the "
                "signature, so the text a reader sees could differ from what was signed"
            )


def _verify_cryptographically(
    signature: etree._Element,
    signed_info: etree._Element,
    key: _Key,
    method: _Method,
    digest: XmlsecTransform,
    c14n_uris: list[str],
) -> None:
    context = xmlsec.SignatureContext()
    context.key = key.xmlsec_key
    # Defence in depth: libxmlsec1 itself refuses any transform the policy did not allow.
    context.enable_signature_transform(_CANONICALIZATIONS[c14n_uris[0]])
    context.enable_signature_transform(method.transform)
    context.enable_reference_transform(_X.TransformEnveloped)
    for uri in c14n_uris[1:]:
        context.enable_reference_transform(_CANONICALIZATIONS[uri])
    context.enable_reference_transform(digest)
    try:
        context.verify(signature)
    except xmlsec.Error:
        raise SignatureInvalid(_diagnose(signed_info, signature, key, method)) from None


def _diagnose(
    signed_info: etree._Element, signature: etree._Element, key: _Key, method: _Method
) -> str:
    """Say which half failed: the signature over SignedInfo, or the package's digest.

    Runs only on failure, so it may redo work: it checks the SignatureValue over SignedInfo
    with ``cryptography``; if that holds, the digest of the package is what broke.
    """
    c14n_element = _child(signed_info, "CanonicalizationMethod")
    c14n = "" if c14n_element is None else str(c14n_element.get("Algorithm", ""))
    value_element = _child(signature, "SignatureValue")
    value_text = "" if value_element is None else "".join((value_element.text or "").split())
    canonical = etree.tostring(
        signed_info,
        method="c14n",
        exclusive=c14n.startswith(EXC_C14N),
        with_comments=c14n.endswith("#WithComments"),
    )
    try:
        raw = base64.b64decode(value_text, validate=True)
        if isinstance(key.public_key, rsa.RSAPublicKey):
            key.public_key.verify(raw, canonical, padding.PKCS1v15(), method.hash())
        elif isinstance(key.public_key, ec.EllipticCurvePublicKey):
            half = len(raw) // 2
            der = encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )
            key.public_key.verify(der, canonical, ec.ECDSA(method.hash()))
    except (InvalidSignature, binascii.Error, ValueError):
        return (
            "SignatureValue does not verify over SignedInfo with the key of the signing "
            f"certificate '{key.subject}': signed with another key, or SignedInfo altered"
        )
    return (
        "the package's content does not match the Reference DigestValue: it was altered "
        "after signing, or content was moved or added around the signature"
    )


# --- the axis's own signature -------------------------------------------------------------


class AxisKey:
    """The axis's signing key and certificate, loaded once, for receipts and checkpoints.

    Signs with python-xmlsec in the one shape the axis itself accepts: enveloped, exclusive
    C14N, ``Reference URI=""``, RSA-SHA256 or ECDSA-SHA256 and the certificate in
    ``KeyInfo``, so ``xmlsec1 --verify`` or any XML-DSig library checks a receipt offline.
    """

    __slots__ = ("_key", "_method", "cert_pem", "certificate")

    def __init__(
        self, key: xmlsec.Key, method: XmlsecTransform, cert_pem: bytes, cert: x509.Certificate
    ) -> None:
        self._key = key
        self._method = method
        self.cert_pem = cert_pem
        self.certificate = cert

    @classmethod
    def load(cls, key_pem: bytes, cert_pem: bytes) -> AxisKey:
        """Load and check a PEM private key (RSA ≥ 2048, EC P-256/P-384) and its certificate."""
        private = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if private.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(
            der, spki
        ):
            raise ValueError("the axis private key does not match its certificate")
        if isinstance(private, rsa.RSAPrivateKey):
            if private.key_size < 2048:
                raise ValueError(f"the axis RSA key has {private.key_size} bits; at least 2048")
            method = _X.TransformRsaSha256
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            if private.curve.name not in _ACCEPTED_CURVES:
                raise ValueError(f"the axis EC key is on {private.curve.name}; P-256 or P-384")
            method = _X.TransformEcdsaSha256
        else:
            raise ValueError(f"the axis key is {type(private).__name__}; RSA or EC required")
        key = xmlsec.Key.from_memory(key_pem, _X.KeyDataFormatPem)
        key.load_cert_from_memory(cert_pem, _X.KeyDataFormatCertPem)
        return cls(key, method, cert_pem, cert)

    def sign_enveloped(self, root: etree._Element) -> bytes:
        """Append an enveloped ``ds:Signature`` to ``root`` and return the document's bytes.

        ``root`` must be its document's root: ``URI=""`` signs the whole document, so signing
        a subtree would sign more than is returned. The tree is modified (the signature is
        appended); the bytes are UTF-8 with an XML declaration.
        """
        if root.getparent() is not None:
            raise ValueError("sign_enveloped needs the document's root element")
        if next(root.iter(_SIGNATURE), None) is not None:
            raise ValueError("the document is already signed; the policy allows one signature")
        signature = xmlsec.template.create(root, _X.TransformExclC14N, self._method, ns="ds")
        root.append(signature)
        reference = xmlsec.template.add_reference(signature, _X.TransformSha256, uri="")
        xmlsec.template.add_transform(reference, _X.TransformEnveloped)
        xmlsec.template.add_transform(reference, _X.TransformExclC14N)
        key_info = xmlsec.template.ensure_key_info(signature)
        x509_data = xmlsec.template.add_x509_data(key_info)
        xmlsec.template.x509_data_add_certificate(x509_data)
        context = xmlsec.SignatureContext()
        context.key = self._key
        context.sign(signature)
        return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def generate_axis_key(common_name: str = "axis", days: int = 3650) -> tuple[bytes, bytes]:
    """A new RSA-3072 key and a self-signed certificate for it, both PEM: ``(key, cert)``.

    Self-signed because the axis is its own root of trust for receipts: auditors pin the
    certificate published at ``GET /v1/axis/certificate``. The window starts an hour back so
    a verifier with a slightly slow clock does not see a not-yet-valid certificate.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
