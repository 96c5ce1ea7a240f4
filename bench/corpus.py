"""The packages the benchmark sends, built and signed before any clock starts.

Every package is distinct (its own ``DocumentId``, so its own bytes): a resend of the same
bytes is answered from the duplicate check and a reused ``DocumentId`` is a conflict, neither
of which is the intake being measured. Packages are made with ``tests/support/packets.py``,
sized by their *signed* length (the signature and its certificate add about 2 KB), and signed
on every core with ``bench.signer``.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from dataclasses import dataclass

from bench.signer import FastSigner, Template, make_template
from tests.support import packets, pki

SENDER = "000.00.00.G22"
RECIPIENT = "000.00.00.H41"
_BATCH = 250


@dataclass(frozen=True)
class Identity:
    """The sender's signing key and pinned certificate, as PEM (picklable)."""

    key_pem: bytes
    cert_pem: bytes


def sender_identity() -> Identity:
    ident = pki.identity("rsa2048", common_name=f"{SENDER} bench signer", slot=7)
    return Identity(ident.key_pem, ident.cert_pem)


@dataclass(frozen=True)
class Spec:
    """What a batch of packages looks like: who to whom, how big, how their ids are made."""

    to_ids: tuple[str, ...]
    attachment_bytes: int
    tag: str  # makes DocumentIds unique per section

    def unsigned(self, serial: int) -> bytes:
        today = dt.datetime.now(packets.VIETNAM_TIME).strftime("%Y/%m/%d")
        return packets.edoc_xml(
            SENDER,
            self.to_ids,
            document_id=f"{SENDER},{today},{serial}/BENCH-{self.tag}",
            attachment_bytes=self.attachment_bytes,
        )


def template(identity: Identity) -> Template:
    unsigned = packets.edoc_xml(SENDER, [RECIPIENT], attachment_bytes=100)
    return make_template(unsigned, identity.key_pem, identity.cert_pem)


def attachment_for(size: int, to_ids: tuple[str, ...], signer: FastSigner) -> int:
    """The ``attachment_bytes`` that make a signed package to ``to_ids`` about ``size`` bytes."""
    probe = 1000
    signed = signer.sign(Spec(to_ids, probe, "probe").unsigned(0))
    return max(0, size - (len(signed) - probe))


_worker: FastSigner | None = None


def _init(tmpl: Template) -> None:
    global _worker
    _worker = FastSigner(tmpl)


def _make(job: tuple[Spec, int, int]) -> list[bytes]:
    spec, start, count = job
    assert _worker is not None
    return [_worker.sign(spec.unsigned(serial)) for serial in range(start, start + count)]


def build(tmpl: Template, spec: Spec, count: int) -> list[bytes]:
    """``count`` signed packages of ``spec``, made on every core."""
    jobs = [(spec, start, min(_BATCH, count - start)) for start in range(0, count, _BATCH)]
    if count <= _BATCH:
        _init(tmpl)
        return [doc for job in jobs for doc in _make(job)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(os.cpu_count() or 1, initializer=_init, initargs=(tmpl,)) as pool:
        return [doc for batch in pool.imap(_make, jobs) for doc in batch]


def check_one(doc: bytes, identity: Identity) -> None:
    """Verify one package the way the axis does, so a bad corpus fails before any timing."""
    from cryptography import x509

    from axis import edxml, signing

    parsed = edxml.parse(doc, expect="edoc")
    signing.verify_package(
        parsed.tree,
        trusted=[x509.load_pem_x509_certificate(identity.cert_pem)],
        allow_sha1=False,
        now=dt.datetime.now(dt.UTC),
    )


def big_package(tmpl: Template, size: int) -> bytes:
    """One package of about ``size`` bytes (one attachment), signed."""
    signer = FastSigner(tmpl)
    spec = Spec((RECIPIENT,), attachment_for(size, (RECIPIENT,), signer), "big")
    return signer.sign(spec.unsigned(1))
