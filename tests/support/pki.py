"""A throwaway PKI for tests: keys, self-signed and CA-issued certificates, in both forms.

Tests need many identities (a trusted sender, an impostor, an expired signer, a weak key),
and RSA key generation costs tens to hundreds of milliseconds, so RSA keys are cached for
the whole session and told apart by ``slot``: ``rsa_key(2048, slot=1)`` is a different key
from ``slot=0`` but the same on every call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeyKind = Literal["rsa1024", "rsa2048", "rsa3072", "p256", "p384", "p521"]

_CURVES: dict[str, ec.EllipticCurve] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
}


@dataclass(frozen=True)
class Identity:
    """A private key and its certificate, as cryptography objects and as PEM."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@cache
def rsa_key(bits: int = 2048, slot: int = 0) -> rsa.RSAPrivateKey:
    """An RSA key of ``bits``, the same for a given ``(bits, slot)`` for the whole session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key(curve: str = "p256", slot: int = 0) -> ec.EllipticCurvePrivateKey:
    """An EC key on ``curve`` (``p256``, ``p384``, ``p521``), cached like ``rsa_key``."""
    return ec.generate_private_key(_CURVES[curve])


def new_key(kind: KeyKind, slot: int = 0) -> PrivateKey:
    """The cached key of that kind and slot."""
    if kind.startswith("rsa"):
        return rsa_key(int(kind[3:]), slot)
    return ec_key(kind, slot)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def make_cert(
    key: PrivateKey,
    *,
    common_name: str,
    organization: str = "Axis test PKI",
    issuer: Identity | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    is_ca: bool = False,
    serial: int | None = None,
) -> x509.Certificate:
    """A certificate for ``key``: self-signed unless ``issuer`` is given.

    The default window is from a day ago to a year ahead, so "valid now" is the default and
    expired or not-yet-valid certificates are made by passing the window explicitly.
    """
    start = not_before if not_before is not None else now() - dt.timedelta(days=1)
    end = not_after if not_after is not None else now() + dt.timedelta(days=365)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    signing_key: PrivateKey = issuer.key if issuer is not None else key
    issuer_name = issuer.cert.subject if issuer is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=not is_ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(signing_key, hashes.SHA256())


def identity(
    kind: KeyKind = "rsa2048",
    *,
    common_name: str = "000.00.00.G22 signer",
    slot: int = 0,
    issuer: Identity | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    is_ca: bool = False,
) -> Identity:
    """A fresh certificate over the cached key of ``kind``/``slot``."""
    key = new_key(kind, slot)
    cert = make_cert(
        key,
        common_name=common_name,
        issuer=issuer,
        not_before=not_before,
        not_after=not_after,
        is_ca=is_ca,
    )
    return Identity(key, cert)


def ca_issued(
    kind: KeyKind = "rsa2048",
    *,
    common_name: str = "000.00.00.G22 signer",
    slot: int = 0,
    ca_slot: int = 90,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[Identity, Identity]:
    """``(leaf, ca)``: a leaf issued by a test CA, as real agencies' certificates are."""
    ca = identity("rsa2048", common_name="Axis test CA", slot=ca_slot, is_ca=True)
    leaf = identity(
        kind,
        common_name=common_name,
        slot=slot,
        issuer=ca,
        not_before=not_before,
        not_after=not_after,
    )
    return leaf, ca
