"""Receipts: the axis's signed statement of what it received, from whom, for whom, when.

Built from the stored record alone, so a receipt can be made again at any time and always says
the same thing; only the signature value differs between two copies.
"""

from __future__ import annotations

from lxml import etree

from axis.model import MessageRecord

RECEIPT_NS = "urn:axis:receipt:1"


def build(record: MessageRecord, *, axis_name: str) -> etree._Element:
    """The unsigned receipt element (see ``schemas/receipt.xsd``)."""

    def sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{RECEIPT_NS}}}{tag}")
        if text is not None:
            element.text = text
        return element

    root = etree.Element(f"{{{RECEIPT_NS}}}Receipt", nsmap={None: RECEIPT_NS})  # type: ignore[dict-item]
    sub(root, "Issuer", axis_name)
    sub(root, "MessageId", record.id)
    sub(root, "Kind", record.kind)
    sub(root, "From", record.from_id)
    sub(root, "DocumentId", record.document_id)
    if record.business_type is not None:
        sub(root, "BusinessType", str(record.business_type))
    if record.status_code is not None:
        sub(root, "StatusCode", record.status_code)
    digest = sub(root, "Digest", record.sha256)
    digest.set("algorithm", "sha-256")
    sub(root, "Size", str(record.size))
    sub(root, "ReceivedAt", record.received_at)
    # what vouched for the bytes: the sender's XML-DSig signature, or the HMAC of the
    # connected system they came through (a system whose packages need not be signed)
    vouched = sub(root, "AuthenticatedBy", record.authenticated_by)
    if record.system_id is not None:
        vouched.set("system", record.system_id)
    recipients = sub(root, "Recipients")
    for r in record.recipients:
        element = sub(recipients, "Recipient")
        element.set("organId", r.organ_id)
        element.set("deliveredTo", r.delivered_to)
        element.set("deliveryId", r.delivery_id)
    return root
