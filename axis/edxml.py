"""edXML packages and status packets: a safe parser and the typed model routing works from.

Everything a sender posts is hostile until proven otherwise, so ``parse`` runs in stages that
each answer with the error a sender can act on:

1. Before libxml2 sees the body, the prolog is scanned for a DOCTYPE: DTDs are refused
   outright (``forbidden_xml``), so no entity is ever declared, let alone expanded, and no
   external subset is fetched. The body is read as UTF-8 (QCVN 102 packages are UTF-8; a
   declaration naming another encoding is refused), which also keeps that scan honest. The
   same pass counts tags and namespace declarations, refusing a body that would make a
   huge tree or a quadratic canonicalisation before libxml2 builds anything.
2. libxml2 parses with entities unresolved, no network, no DTD loading and ``huge_tree``:
   one base64 text node may legitimately be 50 MB, which the default 10 MB limit would
   refuse. ``huge_tree`` also lifts libxml2's own depth and attribute-size limits, so
   the tree is checked afterwards against ``MAX_DEPTH`` and ``MAX_ATTRIBUTE_CHARS``; with
   no DTD there is nothing else ``huge_tree`` would let through.
3. The tree is validated against ``schemas/`` (one root schema per kind of packet), then
   checked for what XSD 1.0 cannot say (cardinality inside any-order headers, duplicate
   recipients, manifest against attachments).

The tree is never altered: no whitespace stripped, comments, PIs and CDATA kept. What
``parse`` returns is exactly what the signature layer verifies and the store keeps.
"""

from __future__ import annotations

import itertools
import mmap
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final, Literal, cast

from lxml import etree

from axis import resources
from axis.errors import ForbiddenXml, MalformedXml, SchemaInvalid

EDXML_NS: Final = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
XINCLUDE_NAMESPACES: Final = (
    "http://www.w3.org/2001/XInclude",
    "http://www.w3.org/2003/XInclude",
)

SCHEMA_DIR: Final = resources.path("schemas")
SCHEMA_FILES: Final[dict[str, str]] = {"edoc": "edxml.xsd", "status": "edxml-status.xsd"}

MAX_DEPTH: Final = 64
"""Deepest element nesting accepted. A real package is about 8 deep (12 inside a signature)."""

MAX_ATTRIBUTE_CHARS: Final = 65_536
"""Longest attribute value accepted. edXML puts its data in text, never in attributes."""

MAX_MARKUP: Final = 50_000
"""Most ``<`` a package may hold: tags, comments, PIs. A real package has a few thousand; a
50 MB body of ``<a/>`` would make a tree of 12 million nodes (gigabytes) before any check."""
MAX_NAMESPACE_DECLARATIONS: Final = 32
"""Most ``xmlns`` declarations: inclusive C14N (which field signers use) costs about the
square of the namespaces in scope for every element, so a few hundred would stall the
signature check for minutes. Real packages declare two to five."""

VIETNAM_TIME: Final = timezone(timedelta(hours=7), "+07:00")
"""edXML timestamps carry no offset; they are Vietnamese time, which has no DST."""

STATUS_CODES: Final = frozenset({"01", "02", "03", "04", "05", "06", "13", "15", "16"})

Kind = Literal["edoc", "status"]


# --- the model --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """The document a packet answers (``MessageHeader/ResponseFor``); ``None`` when empty."""

    organ_id: str | None
    document_id: str | None
    code: str | None
    promulgation_date: str | None


@dataclass(frozen=True, slots=True)
class Edoc:
    """A document package, as routing needs it.

    ``document_id`` is ``MessageHeader/DocumentId``; for a revocation (1) or an update (2)
    that is the id of the document concerned, and a replacement (3) names the documents it
    replaces in ``replaced_ids``. ``response_for`` leaves out ``ResponseFor`` elements that
    are entirely empty (real senders write ``<ResponseFor/>``).
    """

    from_id: str
    to_ids: tuple[str, ...]
    document_id: str
    business_type: int
    replaced_ids: tuple[str, ...]
    subject: str
    priority: int | None
    response_for: tuple[ResponseFor, ...]
    notation: str | None = None  # "CodeNumber/CodeNotation" (số/ký hiệu), as clerks cite it
    kind: Literal["edoc"] = "edoc"


@dataclass(frozen=True, slots=True)
class Status:
    """A status packet: ``response_for`` names the document (its organ_id and document_id
    are always set); ``timestamp`` is the sender's, taken as Vietnamese time."""

    from_id: str
    response_for: ResponseFor
    status_code: str
    timestamp: datetime | None
    description: str | None
    kind: Literal["status"] = "status"


@dataclass(frozen=True, slots=True)
class Parsed:
    """The parsed tree (unaltered: the signature layer verifies it) and what it says."""

    tree: etree._ElementTree
    packet: Edoc | Status
    # tags x (namespace declarations + 1)^2: what canonicalising it may cost, in rough units;
    # the caller verifies a costly package off the event loop
    c14n_cost: int = 0


# --- parsing ----------------------------------------------------------------------------


def parse(
    source: bytes | str | os.PathLike[str],
    *,
    expect: Kind,
    max_depth: int = MAX_DEPTH,
) -> Parsed:
    """Parse, validate and model one packet received on the ``expect`` endpoint.

    ``source`` is the body itself (``bytes``) or the path of the file it was spooled to
    (``str`` or path-like): a large body is parsed from disk by libxml2, never read whole
    into Python. Raises ``MalformedXml``, ``ForbiddenXml`` or ``SchemaInvalid``, each with
    a ``detail`` naming the element or field at fault.
    """
    if expect not in SCHEMA_FILES:
        raise ValueError(f"expect must be 'edoc' or 'status', not {expect!r}")
    tree, (tags, declarations) = _parse_safely(source, max_depth)
    envelope = _envelope(tree)
    _check_kind(envelope, expect)
    _validate(tree, expect)
    packet: Edoc | Status = _edoc(tree, envelope) if expect == "edoc" else _status(envelope)
    return Parsed(tree=tree, packet=packet, c14n_cost=tags * (declarations + 1) ** 2)


def load_schemas() -> None:
    """Compile both schemas now (for this thread): call at startup to fail fast."""
    for kind in SCHEMA_FILES:
        _schema(kind)


_PROLOG = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:[ \t\r\n]+|<\?.*?\?>|<!--.*?-->)*",
    re.DOTALL,
)
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


_ENCODING = re.compile(rb"""<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_NAMESPACE_DECLARATION = re.compile(rb"xmlns\s*[:=]")
_SCAN_CHUNK: Final = 1024 * 1024
_SCAN_OVERLAP: Final = 64


def _scan(buffer: bytes | mmap.mmap) -> tuple[int, int]:
    """Refuse, before libxml2 builds anything, what would make the tree or its checks huge.

    Counts ``<`` (every tag, comment and PI has one; text cannot hold a bare ``<``) and
    ``xmlns`` declarations over the raw bytes in bounded slices, so a spooled 50 MB body is
    scanned without reading it whole. Base64 attachments hold neither ``<`` nor ``:``. Also
    refuses a declared encoding other than UTF-8: the body is read as UTF-8, and a verifier
    that honours another declaration would read different characters than were routed.
    """
    declared = _ENCODING.match(buffer[:256].lstrip(b"\xef\xbb\xbf"))
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise MalformedXml(
            f"the XML declaration names encoding {declared.group(1).decode()!r}: edXML"
            " packages are UTF-8 (line 1)"
        )
    tags = declarations = 0
    size = len(buffer)
    for start in range(0, size, _SCAN_CHUNK):
        end = min(size, start + _SCAN_CHUNK)
        # one slice (a copy, for an mmap) a step, a little longer than the step so that a
        # declaration straddling two steps is counted in the one where it starts
        window = buffer[start : min(size, end + _SCAN_OVERLAP)]
        tags += window.count(b"<", 0, end - start)
        declarations += sum(
            1 for m in _NAMESPACE_DECLARATION.finditer(window) if m.start() < end - start
        )
        if tags > MAX_MARKUP:
            raise ForbiddenXml(
                f"more than {MAX_MARKUP} tags, comments and PIs: not an edXML package"
            )
        if declarations > MAX_NAMESPACE_DECLARATIONS:
            raise ForbiddenXml(
                f"more than {MAX_NAMESPACE_DECLARATIONS} namespace declarations (xmlns):"
                " not an edXML package"
            )
    return tags, declarations


def _refuse_doctype(buffer: bytes | mmap.mmap) -> None:
    """Refuse a DOCTYPE before libxml2 reads it: no DTD, so no entity can ever exist.

    The body is parsed as UTF-8 whatever it declares, so scanning its bytes is scanning
    what libxml2 will read; a UTF-16 or UTF-32 body is named as such rather than left to
    fail on its first byte.

    A DOCTYPE may only stand in the prolog (after the XML declaration, comments, PIs and
    white space); anything else there makes libxml2 stop before any DTD.
    """
    if buffer[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in buffer[:4]:
        raise MalformedXml(
            "the body is not UTF-8 (it looks like UTF-16 or UTF-32): edXML packages are "
            "UTF-8 (line 1, column 1)"
        )
    end = _PROLOG.match(buffer)
    position = end.end() if end else 0
    if _DOCTYPE.match(buffer, position):
        line = buffer[:position].count(b"\n") + 1
        raise ForbiddenXml(f"DOCTYPE (line {line}): DTDs and entity declarations are refused")


_thread = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers must not be shared across threads)."""
    parser: etree.XMLParser | None = getattr(_thread, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            encoding="utf-8",
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=True,
            recover=False,
            remove_blank_text=False,
            remove_comments=False,
            remove_pis=False,
            strip_cdata=False,
            ns_clean=False,
        )
        _thread.parser = parser
    return parser


_FORBIDDEN_ERRORS: Final = frozenset(
    getattr(etree.ErrorTypes, name)
    for name in (
        "ERR_UNDECLARED_ENTITY",
        "WAR_UNDECLARED_ENTITY",
        "ERR_UNPARSED_ENTITY",
        "ERR_ENTITY_IS_EXTERNAL",
        "ERR_ENTITY_IS_PARAMETER",
        "ERR_ENTITY_LOOP",
        "ERR_ENTITY_PE_INTERNAL",
        "ERR_EXT_ENTITY_STANDALONE",
        "ERR_ENTITY_PROCESSING",
        "ERR_RESOURCE_LIMIT",
        "ERR_NO_DTD",
    )
)
_HUGE_HINT = re.compile(r",?\s*(?:use|try) XML_PARSE_HUGE(?: option)?", re.IGNORECASE)
_POSITION_SUFFIX = re.compile(r",\s*line \d+, column \d+$")


def _parse_safely(
    source: bytes | str | os.PathLike[str], max_depth: int
) -> tuple[etree._ElementTree, tuple[int, int]]:
    """Parse ``source`` under the hostile-input rules of the module docstring.

    Also returns what the scan counted: (tags, namespace declarations).
    """
    counts = (0, 0)
    try:
        if isinstance(source, bytes):
            _refuse_doctype(source)
            counts = _scan(source)
            tree: etree._ElementTree = etree.fromstring(source, _parser()).getroottree()
        else:
            path = os.fspath(source)
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_size:
                    with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                        _refuse_doctype(mapped)
                        counts = _scan(mapped)
            tree = etree.parse(path, _parser())
    except etree.XMLSyntaxError as error:
        raise _syntax_error(error, max_depth) from None
    if tree.docinfo.internalDTD is not None or tree.docinfo.system_url:
        raise ForbiddenXml("DOCTYPE: DTDs and entity declarations are refused")
    _check_limits(tree, max_depth)
    return tree, counts


def _syntax_error(error: etree.XMLSyntaxError, max_depth: int) -> MalformedXml | ForbiddenXml:
    """Turn libxml2's complaint into our error, keeping its message and position.

    Only the exception's own fields are trusted: its ``error_log`` may still hold entries
    from earlier documents parsed on this thread.
    """
    line, column = error.position
    message = _POSITION_SUFFIX.sub("", str(error.msg).strip())
    message = _HUGE_HINT.sub("", message).strip()
    where = f"line {line}, column {column}"
    code: int = getattr(error, "code", 0)  # the stubs do not declare it
    if code in _FORBIDDEN_ERRORS:
        if "depth" in message.lower():
            return ForbiddenXml(f"elements nested deeper than {max_depth} ({where})")
        if "entity" in message.lower():
            return ForbiddenXml(f"{message} ({where}): entity references are refused")
        return ForbiddenXml(f"{message} ({where})")
    return MalformedXml(f"{message} ({where})")


@lru_cache(maxsize=8)
def _limit_paths(max_depth: int) -> tuple[etree.XPath, etree.XPath, etree.XPath]:
    """XPaths finding an element deeper than ``max_depth``, an oversized attribute, XInclude."""
    too_deep = etree.XPath("boolean(/*" + "/*" * max_depth + ")")
    too_long = etree.XPath(f"boolean(//@*[string-length(.) > {MAX_ATTRIBUTE_CHARS}])")
    xinclude = etree.XPath(
        "boolean(//xi1:* | //xi2:*)",
        namespaces={"xi1": XINCLUDE_NAMESPACES[0], "xi2": XINCLUDE_NAMESPACES[1]},
    )
    return too_deep, too_long, xinclude


def _check_limits(tree: etree._ElementTree, max_depth: int) -> None:
    """The limits ``huge_tree`` lifted, and XInclude (an external reference), refused."""
    too_deep, too_long, xinclude = _limit_paths(max_depth)
    if too_deep(tree):
        raise ForbiddenXml(f"elements nested deeper than {max_depth}")
    if too_long(tree):
        raise ForbiddenXml(f"an attribute value longer than {MAX_ATTRIBUTE_CHARS} characters")
    if xinclude(tree):
        raise ForbiddenXml("XInclude element: external references are refused")


# --- schema validation ------------------------------------------------------------------


def _schema(kind: str) -> etree.XMLSchema:
    """This thread's compiled schema for ``kind`` (lxml validators keep per-object state)."""
    cache: dict[str, etree.XMLSchema] | None = getattr(_thread, "schemas", None)
    if cache is None:
        cache = _thread.schemas = {}
    key = str(SCHEMA_DIR / SCHEMA_FILES[kind])
    schema = cache.get(key)
    if schema is None:
        loader = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        schema = etree.XMLSchema(etree.parse(key, loader))
        cache[key] = schema
    return schema


_NAMESPACE_IN_MESSAGE = re.compile(r"\{([^}]*)\}")
_LONG_VALUE = re.compile(r"'([^']{80})[^']{20,}'")
_ELEMENT_PREFIX = re.compile(r"^Element '[^']*'(?:, attribute '([^']*)')?: ")


def _validate(tree: etree._ElementTree, kind: str) -> None:
    schema = _schema(kind)
    if schema.validate(tree):
        return
    log: Any = schema.error_log  # the stubs do not declare _ErrorLog's iteration
    errors = list(log)
    if not errors:  # libxml2 always logs why; this is only a guard
        raise SchemaInvalid("document: does not match the edXML schema")
    first = errors[0]
    message = _NAMESPACE_IN_MESSAGE.sub(_short_namespace, first.message.strip())
    message = _LONG_VALUE.sub(lambda m: f"'{m.group(1)}…'", message)
    attribute = _ELEMENT_PREFIX.match(message)
    if attribute:
        message = message[attribute.end() :]
    where = _element_path(tree, first.path)
    if attribute and attribute.group(1):
        where += f"/@{attribute.group(1)}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise SchemaInvalid(f"{where}: {message} (line {first.line}){more}")


def _short_namespace(match: re.Match[str]) -> str:
    namespace = match.group(1)
    if namespace == EDXML_NS:
        return ""
    if namespace == DSIG_NS:
        return "ds:"
    return match.group(0)


def _element_path(tree: etree._ElementTree, xpath: str | None) -> str:
    """A readable path (``edXML/edXMLEnvelope/.../OrganId``) for libxml2's error XPath."""
    if not xpath:
        return "document"
    prefixes: dict[str, str] = {}
    for element in itertools.islice(tree.iter(tag=etree.Element), 1000):
        for prefix, uri in element.nsmap.items():
            if prefix:
                prefixes.setdefault(prefix, uri)
    try:
        found = tree.xpath(xpath, namespaces=prefixes)
    except etree.XPathError:
        found = None
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        return xpath
    element = found[0]
    steps = [_name(node) for node in (element, *element.iterancestors())]
    return "/".join(reversed(steps))


def _name(element: etree._Element) -> str:
    qname = etree.QName(element)
    if qname.namespace == EDXML_NS:
        return qname.localname
    if qname.namespace == DSIG_NS:
        return f"ds:{qname.localname}"
    if qname.namespace is None:
        return qname.localname
    return f"{{{qname.namespace}}}{qname.localname}"


# --- structure --------------------------------------------------------------------------


def _q(local: str) -> str:
    return f"{{{EDXML_NS}}}{local}"


def _first(parent: etree._Element, tag: str) -> etree._Element | None:
    """The first child named ``tag`` (``iterchildren`` runs in C; ``find`` goes through
    ElementPath in Python and costs several times more)."""
    return next(parent.iterchildren(tag), None)


EDXML: Final = _q("edXML")
ENVELOPE: Final = _q("edXMLEnvelope")
HEADER: Final = _q("edXMLHeader")
MESSAGE_HEADER: Final = _q("MessageHeader")


def _envelope(tree: etree._ElementTree) -> etree._Element:
    """The envelope: under an ``edXML`` root, or the root itself (senders omit the wrapper)."""
    root = tree.getroot()
    if root.tag == ENVELOPE:
        return root
    if root.tag == EDXML:
        envelope = _first(root, ENVELOPE)
        if envelope is None:
            raise SchemaInvalid("edXML/edXMLEnvelope: the envelope is missing")
        return envelope
    raise SchemaInvalid(
        f"root element {_name(root)}: an edXML package has root edXML or edXMLEnvelope "
        f"in namespace {EDXML_NS}"
    )


def _message_header(envelope: etree._Element) -> etree._Element | None:
    header = _first(envelope, HEADER)
    return None if header is None else _first(header, MESSAGE_HEADER)


def _check_kind(envelope: etree._Element, expect: str) -> None:
    """Say plainly when a status packet was posted as a document, or the reverse."""
    header = _message_header(envelope)
    if header is None:
        return
    is_status = _first(header, _q("StatusCode")) is not None
    if expect == "edoc" and is_status:
        raise SchemaInvalid(
            "MessageHeader/StatusCode: this is a status packet, not a document package; "
            "send it to /v1/statuses"
        )
    looks_like_edoc = (
        _first(header, _q("To")) is not None or _first(envelope, _q("edXMLBody")) is not None
    )
    if expect == "status" and not is_status and looks_like_edoc:
        raise SchemaInvalid(
            "MessageHeader/StatusCode is missing: this is a document package, not a "
            "status packet; send it to /v1/edocs"
        )


def _text(element: etree._Element) -> str:
    """The element's character content as XSD sees it (comments and PIs left out)."""
    if len(element) == 0:
        return element.text or ""
    return "".join(cast("Iterator[str]", element.itertext()))


def _optional(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    # XML whitespace only: a no-break space is content, as it is for the document's own id
    return _text(element).strip(" \t\r\n") or None


_NS_PREFIX_LENGTH: Final = len(EDXML_NS) + 2

Children = dict[str, list[etree._Element]]


def _children(parent: etree._Element) -> Children:
    """``parent``'s edXML-namespace children by local name, in document order (one pass:
    cheaper than a ``find`` per field)."""
    found: Children = {}
    for child in parent.iterchildren(tag=f"{{{EDXML_NS}}}*"):
        found.setdefault(child.tag[_NS_PREFIX_LENGTH:], []).append(child)
    return found


Rules = dict[str, tuple[int, int | None]]


def _count(children: Children, where: str, rules: Rules) -> None:
    """Check how many of each named child there are: ``rules[name] = (least, most)``."""
    for local, (least, most) in rules.items():
        found = len(children.get(local, ()))
        if least == most and found != least:
            raise SchemaInvalid(f"{where}/{local}: exactly {least} required, found {found}")
        if found < least:
            raise SchemaInvalid(f"{where}/{local}: at least {least} required, found {found}")
        if most is not None and found > most:
            raise SchemaInvalid(f"{where}/{local}: at most {most} allowed, found {found}")


_EDOC_HEADER_RULES: Final[Rules] = {
    "From": (1, 1),
    "To": (1, None),
    "DocumentId": (1, 1),
    "Subject": (1, 1),
    **dict.fromkeys(
        (
            "Code",
            "PromulgationInfo",
            "DocumentType",
            "Content",
            "SignerInfo",
            "DueDate",
            "ToPlaces",
            "OtherInfo",
            "SteeringType",
        ),
        (0, 1),
    ),
}
_STATUS_HEADER_RULES: Final[Rules] = {
    "From": (1, 1),
    "ResponseFor": (1, 1),
    "StatusCode": (1, 1),
    "StaffInfo": (0, 1),
    "Description": (0, 1),
    "Timestamp": (0, 1),
}
_BUSSINESS_RULES: Final[Rules] = {
    "BussinessDocType": (1, 1),
    "DocumentId": (0, 1),
    "ReplacementInfoList": (0, 1),
}


def _one(children: Children, local: str) -> etree._Element | None:
    found = children.get(local)
    return found[0] if found else None


def _child(parent: etree._Element | None, local: str) -> etree._Element | None:
    return None if parent is None else _first(parent, _q(local))


def _required_text(parent: etree._Element | None, local: str) -> str:
    element = _child(parent, local)
    assert element is not None, local  # guaranteed by the schema and _count
    return _text(element)


def _edoc(tree: etree._ElementTree, envelope: etree._Element) -> Edoc:
    header = _message_header(envelope)
    assert header is not None  # the schema requires it
    fields = _children(header)
    _count(fields, "MessageHeader", _EDOC_HEADER_RULES)

    to_ids: dict[str, None] = {}
    for to in fields["To"]:
        organ_id = _required_text(to, "OrganId")
        if organ_id in to_ids:
            raise SchemaInvalid(f"MessageHeader/To/OrganId {organ_id} is listed twice")
        to_ids[organ_id] = None

    business_type, replaced_ids = _business(envelope)
    priority = _optional(_child(_one(fields, "OtherInfo"), "Priority"))
    code = _one(fields, "Code")
    parts = [_optional(_child(code, "CodeNumber")), _optional(_child(code, "CodeNotation"))]
    notation = "/".join(p for p in parts if p) or None
    _check_manifest(tree, envelope)
    return Edoc(
        from_id=_required_text(_one(fields, "From"), "OrganId"),
        to_ids=tuple(to_ids),
        document_id=_text(fields["DocumentId"][0]),
        business_type=business_type,
        replaced_ids=replaced_ids,
        subject=_text(fields["Subject"][0]),
        priority=None if priority is None else int(priority),
        notation=notation,
        response_for=tuple(
            answered
            for answered in map(_response_for, fields.get("ResponseFor", ()))
            if answered != _EMPTY_RESPONSE
        ),
    )


_EMPTY_RESPONSE: Final = ResponseFor(None, None, None, None)


def _response_for(element: etree._Element) -> ResponseFor:
    fields = _children(element)
    return ResponseFor(
        organ_id=_optional(_one(fields, "OrganId")),
        document_id=_optional(_one(fields, "DocumentId")),
        code=_optional(_one(fields, "Code")),
        promulgation_date=_optional(_one(fields, "PromulgationDate")),
    )


def _business(envelope: etree._Element) -> tuple[int, tuple[str, ...]]:
    """``Bussiness/BussinessDocType`` (0 without one) and the replaced documents' ids."""
    trace = _child(_child(envelope, "edXMLHeader"), "TraceHeaderList")
    if trace is None:
        return 0, ()
    businesses = list(trace.iterchildren(_q("Bussiness")))
    if not businesses:
        return 0, ()
    if len(businesses) > 1:
        raise SchemaInvalid(
            f"TraceHeaderList/Bussiness: at most 1 allowed, found {len(businesses)}"
        )
    fields = _children(businesses[0])
    _count(fields, "Bussiness", _BUSSINESS_RULES)
    business_type = int(_text(fields["BussinessDocType"][0]))
    replaced: dict[str, None] = {}
    listing = _one(fields, "ReplacementInfoList")
    if listing is not None:
        for info in listing.iterchildren(_q("ReplacementInfo")):
            replaced.setdefault(_required_text(info, "DocumentId"), None)
    if business_type == 3 and not replaced:
        raise SchemaInvalid(
            "Bussiness/ReplacementInfoList: a replacement (BussinessDocType 3) must name the "
            "replaced document in ReplacementInfo/DocumentId"
        )
    return business_type, tuple(replaced)


def _check_manifest(tree: etree._ElementTree, envelope: etree._Element) -> None:
    """Every manifest Reference has its Attachment (same ContentId), and the reverse."""
    manifest = _child(_child(envelope, "edXMLBody"), "edXMLManifest")
    references = _content_ids(manifest, "Reference", "edXMLManifest/Reference")
    root = tree.getroot()
    encoded = _first(root, _q("AttachmentEncoded")) if root is not envelope else None
    attachments = _content_ids(encoded, "Attachment", "AttachmentEncoded/Attachment")
    for content_id in references:
        if content_id not in attachments:
            raise SchemaInvalid(
                f"edXMLManifest/Reference ContentId {content_id}: no Attachment carries it"
            )
    for content_id in attachments:
        if content_id not in references:
            raise SchemaInvalid(
                f"AttachmentEncoded/Attachment ContentId {content_id}: "
                "no manifest Reference names it"
            )


def _content_ids(parent: etree._Element | None, local: str, where: str) -> dict[str, None]:
    seen: dict[str, None] = {}
    if parent is None:
        return seen
    for element in parent.iterchildren(_q(local)):
        content_id = _required_text(element, "ContentId")
        if content_id in seen:
            raise SchemaInvalid(f"{where} ContentId {content_id} is listed twice")
        seen[content_id] = None
    return seen


def _status(envelope: etree._Element) -> Status:
    header = _message_header(envelope)
    assert header is not None  # the schema requires it
    fields = _children(header)
    if "To" in fields:
        raise SchemaInvalid(
            "MessageHeader/To: a status packet has no To; it goes to the parties of the "
            "document named in ResponseFor"
        )
    _count(fields, "MessageHeader", _STATUS_HEADER_RULES)
    answered = _response_for(fields["ResponseFor"][0])
    # The status schema requires both, non-empty and without surrounding white space.
    assert answered.organ_id is not None
    assert answered.document_id is not None
    status_code = _text(fields["StatusCode"][0])
    assert status_code in STATUS_CODES
    return Status(
        from_id=_required_text(fields["From"][0], "OrganId"),
        response_for=answered,
        status_code=status_code,
        timestamp=_timestamp(_one(fields, "Timestamp")),
        description=_optional(_one(fields, "Description")),
    )


def _timestamp(element: etree._Element | None) -> datetime | None:
    if element is None:
        return None
    text = _text(element)
    try:
        moment = datetime.strptime(text, "%Y/%m/%d %H:%M:%S")
    except ValueError:
        raise SchemaInvalid(
            f"MessageHeader/Timestamp {text!r} is not a real date and time (yyyy/MM/dd HH:mm:ss)"
        ) from None
    return moment.replace(tzinfo=VIETNAM_TIME)
