"""openapi.yaml: it lists exactly the server's routes, and its schemas match real answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from axis import bootstrap, errors
from axis.config import Settings
from axis.jobs import make_checkpoint
from axis.signing import AxisKey
from axis.store import open_store
from axis.web.app import create_app
from axis.web.middleware import HTTP_CODES
from tests.support.harness import AxisHarness, TestAgency

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = ROOT / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
PUBLIC = {
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/axis/certificate",
    "/v1/axis/certificates",
    "/v1/openapi.yaml",
}
G22 = "000.00.00.G22"
H41 = "000.00.00.H41"

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def spec() -> Spec:
    return cast(Spec, yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8")))


# ----------------------------------------------------------------------- helpers


def resolve(spec: Spec, node: Any) -> Any:
    """Follow ``$ref`` (local JSON pointers) until a node that is not a reference."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert isinstance(ref, str) and ref.startswith("#/"), f"not a local $ref: {ref!r}"
        assert ref not in seen, f"$ref loop at {ref}"
        seen.add(ref)
        target: Any = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"$ref does not resolve: {ref}"
            target = target[part]
        node = target
    return node


def vdxp_operations(spec: Spec) -> list[tuple[str, str, dict[str, Any]]]:
    """The ``/vxp`` operations: the SDK's protocol, with its own authentication and answers."""
    return [(m, p, op) for m, p, op in all_operations(spec) if p.startswith("/vxp/")]


def operations(spec: Spec) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (METHOD, path, operation) of the bearer-token API (everything but ``/vxp``)."""
    return [(m, p, op) for m, p, op in all_operations(spec) if not p.startswith("/vxp/")]


def all_operations(spec: Spec) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (METHOD, path, operation) of ``paths``."""
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def schema(spec: Spec, name: str) -> dict[str, Any]:
    return cast(dict[str, Any], spec["components"]["schemas"][name])


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def shape_errors(spec: Spec, node: Any, value: Any, where: str) -> list[str]:
    """What in ``value`` the schema ``node`` does not allow (keys, types, enums), recursively."""
    node = resolve(spec, node)
    alternatives = node.get("oneOf") or node.get("anyOf")
    if alternatives:
        tries = [shape_errors(spec, alt, value, where) for alt in alternatives]
        return [] if any(not t for t in tries) else [e for t in tries for e in t]
    found: list[str] = []
    types = node.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        ok = any(
            isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and value is True)
            for t in allowed
        ) and not (isinstance(value, bool) and "boolean" not in allowed)
        if not ok:
            return [f"{where}: {value!r} is not {allowed}"]
    if "enum" in node and value not in node["enum"]:
        found.append(f"{where}: {value!r} not in {node['enum']}")
    if "const" in node and value != node["const"]:
        found.append(f"{where}: {value!r} is not {node['const']!r}")
    if isinstance(value, dict) and "properties" in node:
        props = node["properties"]
        extra = sorted(set(value) - set(props))
        missing = sorted(set(node.get("required", [])) - set(value))
        if extra:
            found.append(f"{where}: undocumented keys {extra}")
        if missing:
            found.append(f"{where}: required keys missing {missing}")
        for key, item in value.items():
            if key in props:
                found += shape_errors(spec, props[key], item, f"{where}.{key}")
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            found += shape_errors(spec, node["items"], item, f"{where}[{i}]")
    return found


def assert_shape(spec: Spec, name: str, value: Any) -> None:
    problems = shape_errors(spec, schema(spec, name), value, name)
    assert not problems, "\n".join(problems)


def assert_exact(spec: Spec, name: str, value: dict[str, Any]) -> None:
    """The answer's keys are exactly the schema's properties, and the rest of it fits."""
    assert sorted(value) == sorted(schema(spec, name)["properties"]), name
    assert_shape(spec, name, value)


# ----------------------------------------------------------------------- the file itself


def test_paths_are_exactly_the_routes_the_app_registers(spec: Spec, settings: Settings) -> None:
    """Every route the server takes is described, and nothing it does not take."""

    class _NoKey:
        cert_pem = b""

    app = create_app(settings, open_store(settings), cast(AxisKey, _NoKey()), own_store=False)
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        # the console is pages for people (README, "Console"), not part of the API
        and not route.resource.canonical.startswith("/console")
    }
    described = {(method, path) for method, path, _ in all_operations(spec)}
    assert described == served, {"undocumented": served - described, "absent": described - served}


def test_every_reference_resolves(spec: Spec) -> None:
    """A client generator never meets a dangling $ref."""
    refs: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        resolve(spec, ref)


def test_operations_answer_2xx_and_errors_are_problems(spec: Spec) -> None:
    """Each operation has a success answer; every error answer is a Problem with X-Request-Id."""
    problem_ref = "#/components/schemas/Problem"
    for method, path, op in operations(spec):
        codes = [str(code) for code in op["responses"]]
        assert any(code.startswith("2") for code in codes), (method, path)
        assert op.get("tags"), (method, path)
        for code, raw in op["responses"].items():
            response = resolve(spec, raw)
            assert "X-Request-Id" in response.get("headers", {}), (method, path, code)
            if str(code)[0] in "45":
                media = response.get("content", {}).get("application/problem+json")
                assert media is not None, (method, path, code)
                assert media["schema"] == {"$ref": problem_ref}, (method, path, code)
    for name, raw in spec["components"]["responses"].items():
        media = resolve(spec, raw)["content"]["application/problem+json"]
        assert media["schema"] == {"$ref": problem_ref}, name


def test_headers_the_contract_names_are_described(spec: Spec) -> None:
    """401, 429, 503, 405, 201 and a fetch carry the headers a client relies on."""
    responses = spec["components"]["responses"]
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    assert "Retry-After" in responses["RateLimited"]["headers"]
    assert "Retry-After" in responses["Unavailable"]["headers"]
    assert "Allow" in responses["MethodNotAllowed"]["headers"]
    for path in ("/v1/edocs", "/v1/statuses"):
        assert "Location" in spec["paths"][path]["post"]["responses"]["201"]["headers"]
    fetch = spec["paths"]["/v1/inbox/{id}"]["get"]["responses"]["200"]["headers"]
    assert {"X-Axis-Message-Id", "X-Axis-From", "X-Axis-Kind", "Repr-Digest"} <= set(fetch)


def test_public_endpoints_need_no_token_and_others_do(spec: Spec) -> None:
    """Only health, readiness, metrics and the axis certificate are open without a token."""
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for method, path, op in operations(spec):
        if path in PUBLIC:
            assert op.get("security") == [], (method, path)
        else:
            assert "security" not in op, (method, path)
            assert "401" in op["responses"], (method, path)


def test_the_vdxp_operations_are_described_with_their_own_answers(spec: Spec) -> None:
    """Each of the SDK's 13 operations is described with its method, the HMAC scheme, and the
    SDK's JSON answer for success and failure (downloadEdoc: the bytes, or nothing)."""
    from axis.vdxp import OPERATIONS

    described = {(m, p) for m, p, _ in vdxp_operations(spec)}
    assert described == {(op.method, f"/vxp/{name}") for name, op in OPERATIONS.items()}
    answer = {"$ref": "#/components/schemas/VdxpAnswer"}
    for _, path, op in vdxp_operations(spec):
        assert op["security"] == [{"vdxpHmac": []}], path
        assert op["tags"] == ["vdxp"], path
        ok, failed = op["responses"]["200"], op["responses"]["default"]
        if path == "/vxp/downloadEdoc":
            assert "application/xml" in ok["content"] and "content" not in failed
        else:
            assert ok["content"]["application/json"]["schema"] == answer, path
            assert failed["content"]["application/json"]["schema"] == answer, path


def test_path_parameters_are_declared(spec: Spec) -> None:
    """Every {name} of a path template is a required path parameter of each operation."""
    for method, path, op in operations(spec):
        declared = [
            resolve(spec, p)
            for p in [*spec["paths"][path].get("parameters", []), *op.get("parameters", [])]
        ]
        names = {p["name"] for p in declared if p["in"] == "path"}
        assert names == set(re.findall(r"{(\w+)}", path)), (method, path)
        assert all(p["required"] for p in declared if p["in"] == "path"), (method, path)


def test_problem_codes_cover_every_code_the_server_answers(spec: Spec) -> None:
    """The Problem code enum is exactly the codes of axis/errors.py and the web layer."""

    def subclasses(cls: type[errors.AxisError]) -> list[type[errors.AxisError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    served = {cls.code for cls in subclasses(errors.AxisError)}
    served |= set(HTTP_CODES.values())
    for source in (ROOT / "axis").rglob("*.py"):
        served |= set(re.findall(r'problem_response\(\s*\d+,\s*"(\w+)"', source.read_text()))
    assert {"unavailable", "internal_error", "not_ready", "method_not_allowed"} <= served
    enum = schema(spec, "Problem")["properties"]["code"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == served


def test_event_types_are_those_of_the_model(spec: Spec) -> None:
    """The `type` filter lists exactly the event types the server takes (and writes)."""
    from axis.model import EVENT_TYPES

    assert schema(spec, "EventType")["enum"] == list(EVENT_TYPES)


def test_every_operation_may_answer_400(spec: Spec) -> None:
    """Any operation refuses an unknown or empty query parameter, so each lists a 400."""
    for method, path, op in operations(spec):
        assert "400" in op["responses"], (method, path)


def test_query_bounds_are_those_the_code_enforces(spec: Spec) -> None:
    """limit is 1..1000 (default 100) and wait 0..60, as the server checks them."""
    limit = spec["components"]["parameters"]["Limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100)
    inbox = spec["paths"]["/v1/inbox"]["get"]["parameters"]
    wait = next(p for p in inbox if p.get("name") == "wait")["schema"]
    assert (wait["minimum"], wait["maximum"]) == (0, 60)
    kind = next(p for p in inbox if p.get("name") == "kind")["schema"]
    assert kind["enum"] == ["edoc", "status"]


def test_webhook_lists_every_header_the_push_worker_sends(spec: Spec) -> None:
    """A receiver learns from the description every X-Axis-* header a push carries."""
    sent = set(re.findall(r'"(X-Axis-[A-Za-z-]+)"', (ROOT / "axis" / "push.py").read_text()))
    assert sent >= {"X-Axis-Message-Id", "X-Axis-Signature", "X-Axis-Timestamp"}
    push = spec["webhooks"]["push"]["post"]
    described = {p["name"] for p in push["parameters"] if p["in"] == "header"}
    assert described == sent
    assert "application/xml" in push["requestBody"]["content"]


# ----------------------------------------------------------------------- real answers


async def test_send_view_inbox_and_audit_answers_match_their_schemas(
    axis: AxisHarness, spec: Spec
) -> None:
    """The 201 answer, the message view, an inbox item and audit events have the documented keys."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    status, accepted = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201, accepted
    assert_exact(spec, "Accepted", accepted)
    assert_exact(spec, "AcceptedRecipient", accepted["recipients"][0])

    status_packet = axis.status(receiver, G22, accepted["document_id"], "01")
    status, relayed = await axis.send_status(receiver, status_packet)
    assert status == 201, relayed
    assert_exact(spec, "Accepted", relayed)

    status, view = await axis.get(sender, f"/v1/messages/{accepted['id']}")
    assert status == 200
    assert_exact(spec, "MessageView", view)
    row = view["recipients"][0]
    assert_exact(spec, "MessageRecipient", row)
    assert_exact(spec, "StatusEntry", row["statuses"][0])
    assert_exact(spec, "Link", view["referred_by"][0])

    status, inbox = await axis.get(receiver, "/v1/inbox?kind=edoc")
    assert status == 200
    assert_shape(spec, "InboxPage", inbox)
    assert_exact(spec, "InboxItem", inbox["items"][0])

    status, events = await axis.get(axis.admin, f"/v1/audit/events?message_id={accepted['id']}")
    assert status == 200
    assert_shape(spec, "AuditEventPage", events)
    assert events["items"]
    for event in events["items"]:
        assert_exact(spec, "AuditEvent", event)


async def test_other_answers_match_their_schemas(axis: AxisHarness, spec: Spec) -> None:
    """Outbox, ack, directory, admin, audit and operations answers fit their schemas."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    status, accepted = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201
    message_id = accepted["id"]
    await make_checkpoint(axis.store, bootstrap.load_key(axis.settings), actor="test")

    shapes: dict[str, tuple[dict[str, str] | TestAgency, str]] = {
        "OutboxPage": (sender, "/v1/outbox"),
        "AgencyPage": (receiver, "/v1/agencies"),
        "AdminAgencyPage": (axis.admin, "/v1/admin/agencies"),
        "AdminAgency": (axis.admin, f"/v1/admin/agencies/{G22}"),
        "TokenPage": (axis.admin, "/v1/admin/tokens"),
        "DeliveryPage": (axis.admin, f"/v1/admin/deliveries?organ_id={H41}"),
        "AuditTrail": (axis.admin, f"/v1/audit/messages/{message_id}"),
        "Verify": (axis.admin, "/v1/audit/verify"),
        "CheckpointPage": (axis.admin, "/v1/audit/checkpoints"),
        "Health": ({}, "/healthz"),
        "Ready": ({}, "/readyz"),
    }
    answers: dict[str, Any] = {}
    for name, (who, path) in shapes.items():
        status, body = await axis.get(who, path)
        assert status == 200, (path, body)
        assert_shape(spec, name, body)
        answers[name] = body
    for name in ("OutboxPage", "AgencyPage", "AdminAgencyPage", "TokenPage", "DeliveryPage"):
        assert answers[name]["items"], name
    assert_exact(spec, "AdminAgency", answers["AdminAgency"])
    assert_exact(spec, "Delivery", answers["DeliveryPage"]["items"][0])
    assert_exact(spec, "Checkpoint", answers["CheckpointPage"]["items"][0])
    assert_exact(spec, "TrailMessage", answers["AuditTrail"]["message"])

    status, acked = await axis.post_json(
        receiver, f"/v1/inbox/{message_id}/ack", {"result": "done"}
    )
    assert status == 200
    assert_exact(spec, "AckAnswer", acked)
    async with axis.session.post(
        f"{axis.url}/v1/admin/agencies/{G22}/tokens", headers=axis.admin
    ) as resp:
        assert resp.status == 201
        assert_exact(spec, "TokenIssued", await resp.json())


async def test_error_answers_are_documented_problems(axis: AxisHarness, spec: Spec) -> None:
    """401, 404 and 405 answers are Problems with the headers the description promises."""
    async with axis.session.get(f"{axis.url}/v1/inbox") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert resp.headers["X-Request-Id"]
        assert resp.content_type == "application/problem+json"
        assert_shape(spec, "Problem", await resp.json())
    status, problem = await axis.get(axis.admin, "/v1/messages/msg_none")
    assert status == 404
    assert_shape(spec, "Problem", problem)
    async with axis.session.delete(f"{axis.url}/v1/inbox", headers=axis.admin) as resp:
        assert resp.status == 405
        assert "GET" in resp.headers["Allow"]
        problem = await resp.json(content_type=None)
        assert_shape(spec, "Problem", problem)
        assert problem["code"] == "method_not_allowed"


async def test_the_description_is_served_as_it_is_in_the_checkout(axis: AxisHarness) -> None:
    """GET /v1/openapi.yaml, without a token, gives the bytes of openapi.yaml."""
    async with axis.session.get(f"{axis.url}/v1/openapi.yaml") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/yaml"
        assert await resp.read() == SPEC_FILE.read_bytes()
