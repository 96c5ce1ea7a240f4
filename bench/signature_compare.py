"""Which engine verifies edXML signatures: python-xmlsec or signxml, measured.

Signature verification is the per-package CPU cost that matters at intake, so the choice is
made with numbers from this machine: packages of the real edXML shape (about 8 KB, and 1 MB
with an attachment), enveloped RSA-2048/SHA-256 over the whole document, exclusive C14N,
signed once with signxml and verified many times by each engine with a key loaded once.

    .venv/bin/python -m bench.signature_compare [--rounds N | --quick]

Prints the p50 (and p90) milliseconds per verification for each engine and each size, the
cost of loading a certificate's key (why axis.signing caches keys), and the machine.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from axis import signing

EDXML = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS = "http://www.w3.org/2000/09/xmldsig#"

PACKAGE = """<?xml version="1.0" encoding="UTF-8"?>
<edXML:edXML xmlns:edXML="{ns}">
  <edXML:edXMLEnvelope>
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>
          <edXML:OrganAdd>Số 1 Hoàng Hoa Thám, Quận Ba Đình, Hà Nội</edXML:OrganAdd>
          <edXML:Email>vpcp@chinhphu.vn</edXML:Email>
        </edXML:From>
        <edXML:To>
          <edXML:OrganId>000.00.00.H26</edXML:OrganId>
          <edXML:OrganName>UBND tỉnh Hưng Yên</edXML:OrganName>
        </edXML:To>
        <edXML:DocumentId>000.00.00.G22,2025/07/01,1234/VPCP-TTĐT</edXML:DocumentId>
        <edXML:Code>
          <edXML:CodeNumber>1234</edXML:CodeNumber>
          <edXML:CodeNotation>VPCP-TTĐT</edXML:CodeNotation>
        </edXML:Code>
        <edXML:PromulgationInfo>
          <edXML:Place>Hà Nội</edXML:Place>
          <edXML:PromulgationDate>2025/07/01</edXML:PromulgationDate>
        </edXML:PromulgationInfo>
        <edXML:Subject>Về việc triển khai liên thông văn bản điện tử</edXML:Subject>
      </edXML:MessageHeader>
      <ds:Signature xmlns:ds="{ds}" Id="placeholder"/>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:1</edXML:ContentId>
          <edXML:ContentType>application/pdf</edXML:ContentType>
          <edXML:AttachmentName>vanban.pdf</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <edXML:AttachmentEncoded>
    <edXML:Attachment>
      <edXML:ContentId>cid:1</edXML:ContentId>
      <edXML:AttachmentName>vanban.pdf</edXML:AttachmentName>
      <edXML:ContentType>application/pdf</edXML:ContentType>
      <edXML:ContentTransferEncoded>{blob}</edXML:ContentTransferEncoded>
    </edXML:Attachment>
  </edXML:AttachmentEncoded>
</edXML:edXML>
"""


def package(total: int) -> bytes:
    """An unsigned package padded with base64 so that, once signed, it is about ``total``."""
    bare = len(PACKAGE.format(ns=EDXML, ds=DS, blob="").encode()) + 2150  # the signature
    raw = os.urandom(max(0, total - bare) * 3 // 4)
    text = base64.encodebytes(raw).decode()
    return PACKAGE.format(ns=EDXML, ds=DS, blob=text).encode()


def identity() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "000.00.00.G22 bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def timed(function: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(p50, p90) in milliseconds over ``rounds`` calls, after a short warm-up."""
    return interleaved({"": function}, rounds)[""]


def interleaved(
    functions: dict[str, Callable[[], object]], rounds: int
) -> dict[str, tuple[float, float]]:
    """(p50, p90) ms for each function, called in turn each round.

    Interleaving keeps a slow spell of a shared 2-core machine from landing on one engine.
    """
    for _ in range(min(20, rounds)):
        for function in functions.values():
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter_ns()
            function()
            samples[name].append((time.perf_counter_ns() - start) / 1e6)
    return {
        name: (statistics.median(values), statistics.quantiles(values, n=10)[8])
        for name, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="verifications per 8 KB case")
    parser.add_argument("--quick", action="store_true", help="100 rounds: a smoke check")
    args = parser.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 100)

    print(f"machine: {platform.platform()}; {platform.processor() or platform.machine()}")
    print(f"cpus: {os.cpu_count()}; python {platform.python_version()}")
    print(
        f"lxml {version('lxml')} (libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}); "
        f"python-xmlsec {version('xmlsec')} (libxmlsec1 "
        f"{'.'.join(map(str, getattr(xmlsec, 'get_libxmlsec_version')()))}); "  # noqa: B009
        f"signxml {version('signxml')}; cryptography {version('cryptography')}"
    )

    key, cert = identity()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    now = dt.datetime.now(dt.UTC)

    spki_der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def context_with(key: xmlsec.Key) -> None:
        xmlsec.SignatureContext().key = key

    cert_key = xmlsec.Key.from_memory(cert_der, xmlsec.constants.KeyDataFormatCertDer)
    bare_key = xmlsec.Key.from_memory(spki_der, xmlsec.constants.KeyDataFormatDer)
    loads = interleaved(
        {
            "load a public key (SPKI DER)": lambda: xmlsec.Key.from_memory(
                spki_der, xmlsec.constants.KeyDataFormatDer
            ),
            "load a key from the certificate": lambda: xmlsec.Key.from_memory(
                cert_der, xmlsec.constants.KeyDataFormatCertDer
            ),
            "hand a loaded bare key to a context": lambda: context_with(bare_key),
            "hand a loaded cert key to a context": lambda: context_with(cert_key),
        },
        500,
    )
    print("\nlibxmlsec1 key handling (why axis.signing caches a bare public key per certificate):")
    for name, (p50, _) in loads.items():
        print(f"  {name:<40} p50 {p50 * 1000:8.1f} µs")

    xmlsec_key = xmlsec.Key.from_memory(spki_der, xmlsec.constants.KeyDataFormatDer)
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    config = SignatureConfiguration(location=".//", expect_references=1)

    print(f"\n{'package':>10}  {'engine':<34} {'p50 ms':>9} {'p90 ms':>9}")
    for target, rounds in ((8 * 1024, args.rounds), (1024 * 1024, max(20, args.rounds // 20))):
        signed_root = signer.sign(etree.fromstring(package(target)), key=key_pem, cert=cert_pem)
        data = etree.tostring(signed_root, xml_declaration=True, encoding="UTF-8")
        tree = etree.ElementTree(etree.fromstring(data))
        root = tree.getroot()
        signature = root.find(f".//{{{DS}}}Signature")
        assert signature is not None

        def raw_xmlsec(node: etree._Element = signature) -> None:
            context = xmlsec.SignatureContext()
            context.key = xmlsec_key
            context.verify(node)

        def axis_policy(tree: etree._ElementTree = tree) -> None:
            signing.verify_package(tree, trusted=[cert], allow_sha1=False, now=now)

        def raw_signxml(root: etree._Element = root) -> None:
            XMLVerifier().verify(root, x509_cert=cert, expect_config=config)

        cases: dict[str, Callable[[], object]] = {
            "python-xmlsec (key cached)": raw_xmlsec,
            "axis.signing.verify_package": axis_policy,
            "signxml (x509_cert pinned)": raw_signxml,
        }
        for name, (p50, p90) in interleaved(cases, rounds).items():
            print(f"{len(data) / 1024:>8.0f}KB  {name:<34} {p50:>9.3f} {p90:>9.3f}")


if __name__ == "__main__":
    main()
