"""One error tree for the whole axis.

Each class knows its stable problem ``code`` and HTTP status, so the web layer maps any
``AxisError`` to ``application/problem+json`` in one place and the core never imports aiohttp.
``detail`` always names the element or field at fault: a sender must be able to fix the
package from the answer alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

from axis.ratelimit import retry_after_header


class AxisError(Exception):
    """Base of every error the axis reports to a client."""

    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Invalid request"
    # the answer ends the connection: what the client may still send is not a next request
    closes_connection: ClassVar[bool] = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}  # HTTP headers the answer carries besides the body

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 body, with our machine ``code``."""
        body: dict[str, Any] = {
            "type": f"https://axis.gov.vn/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body


class InvalidRequest(AxisError):
    code = "invalid_request"
    status = 400
    title = "Invalid request"


class MalformedXml(AxisError):
    code = "malformed_xml"
    status = 400
    title = "The body is not well-formed XML"


class ForbiddenXml(AxisError):
    code = "forbidden_xml"
    status = 400
    title = "The XML uses a forbidden construct (DTD, entity, external reference, size)"


class SchemaInvalid(AxisError):
    code = "schema_invalid"
    status = 400
    title = "The package does not match the edXML schema"


class SignatureMissing(AxisError):
    code = "signature_missing"
    status = 400
    title = "The package carries no XML-DSig signature"


class SignatureInvalid(AxisError):
    code = "signature_invalid"
    status = 400
    title = "The signature does not hold"


class SignatureAlgorithm(AxisError):
    code = "signature_algorithm"
    status = 400
    title = "The signature uses an algorithm the policy refuses"


class Unauthorized(AxisError):
    code = "unauthorized"
    status = 401
    title = "Missing or invalid bearer token"

    def __init__(self, detail: str, *, invalid_token: bool) -> None:
        super().__init__(detail)
        # RFC 9110 §11.6.1 and RFC 6750 §3: a 401 names the scheme it wants, and says when
        # the token given was the trouble
        error = ', error="invalid_token"' if invalid_token else ""
        self.headers["WWW-Authenticate"] = f'Bearer realm="axis"{error}'


class Forbidden(AxisError):
    code = "forbidden"
    status = 403
    title = "This token may not do that"


class SenderMismatch(AxisError):
    code = "sender_mismatch"
    status = 403
    title = "From/OrganId is not the caller's agency"


class UntrustedSigner(AxisError):
    code = "untrusted_signer"
    status = 403
    title = "The signing certificate is not registered for the sender or not valid now"


class NotAParty(AxisError):
    code = "not_a_party"
    status = 403
    title = "The caller is not a party to that document"


class NotFound(AxisError):
    code = "not_found"
    status = 404
    title = "Not found"


class DuplicateConflict(AxisError):
    code = "duplicate_conflict"
    status = 409
    title = "Conflicts with what was accepted before"


class TooLarge(AxisError):
    code = "too_large"
    status = 413
    title = "The body is larger than the limit"


class UnsupportedMediaType(AxisError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class UnknownRecipient(AxisError):
    code = "unknown_recipient"
    status = 422
    title = "A recipient code is not registered"


class RecipientUnavailable(AxisError):
    code = "recipient_unavailable"
    status = 422
    title = "A recipient cannot receive mail now"


class UnknownDocument(AxisError):
    code = "unknown_document"
    status = 422
    title = "No such document from this sender"


class RequestTimeout(AxisError):
    code = "request_timeout"
    status = 408
    title = "The request body stopped arriving"
    closes_connection = True


class AgencyNotActive(AxisError):
    code = "agency_not_active"
    status = 409
    title = "The agency is not active"


class RateLimited(AxisError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = retry_after_header(retry_after)


class SystemUnauthorized(AxisError):
    """A /vxp request does not prove it comes from an active connected system (VDXP
    ErrorCode 15): no signature, an unknown or disabled system, an HMAC that does not hold."""

    code = "unauthorized"
    status = 401
    title = "Unknown or disabled system, or the HMAC does not hold"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        # RFC 9110 §11.6.1: a 401 names the scheme it wants
        self.headers["WWW-Authenticate"] = 'XroadVnpt-HMAC realm="vxp"'


class HashFileMismatch(AxisError):
    """``sendEdoc``'s body matches its signed ``hash-file`` neither with nor without the
    SDK's trailing CRLF (ErrorCode 10)."""

    code = "hash_mismatch"
    status = 400
    title = "The body does not match the signed hash-file"


class UnknownSender(AxisError):
    """The ``from`` code a system sends as is not a registered agency (ErrorCode 19)."""

    code = "unknown_sender"
    status = 422
    title = "The sending agency is not registered"


class ClientGone(Exception):
    """The client closed its connection before its request was read whole.

    A client event, not a failure of the axis: nothing is answered (nobody is listening), it
    is logged at info as ``client_aborted`` and counted apart from the answered requests.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StoreError(Exception):
    """A backend failure (disk full, engine gone): never the client's fault, answered 503."""


class StoreUnavailable(StoreError):
    """The store cannot take writes now (read-only disk, engine down)."""
