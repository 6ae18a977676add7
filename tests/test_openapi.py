"""The OpenAPI document (``api_gateway/openapi.py``) and the gateway agree.

1. Every route is documented and every documented operation is routed, with the credential its
   route name asks for; the document is valid OpenAPI 3.1 and its schemas valid JSON Schema.
2. Schemathesis against a running stack: generated requests, valid and invalid, never get a 5xx,
   and every answer keeps to the documented status codes, content types, headers and schemas.
3. Inputs the random search rarely tries, each of which once got a 5xx, get a documented answer.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_gateway import openapi
from api_gateway.app import create_app
from api_gateway.auth import INGEST_ROUTE_PREFIX, OPERATOR_ROUTE_PREFIX
from api_gateway.console.middleware import PUBLIC_PREFIX, SIGNED_IN_PREFIX
from common.config import Settings
from harness.stack import TEST_SECRET_KEYS, TEST_SNAPSHOT_KEYS, Stack
from tests.conftest import ProjectKey

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Operations routes rather than API: documented, but the router check does not insist on them.
UNCHECKED_ROUTES = {"healthz", "readyz", "metrics", "openapi"}
# The console's pages are HTML for people, not API.
CONSOLE_ROUTE_PREFIXES = (SIGNED_IN_PREFIX, PUBLIC_PREFIX)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# 25 keeps the run near 10 s on two cores (plus the stack's start); raise it for a deeper search.
EXAMPLES_PER_OPERATION = int(os.environ.get("SENDPROMPTLY_OPENAPI_EXAMPLES", "25"))


# --- the document against the router --------------------------------------------------------------

def _documented_operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> Any:
    """``node``, or what its local ``$ref`` points at."""
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/"), ref
    for part in ref[2:].split("/"):
        doc = doc[part]
    return doc


def _parameters(doc: dict[str, Any], path: str, operation: dict[str, Any]) -> list[dict[str, Any]]:
    shared = doc["paths"][path].get("parameters", [])
    return [_resolve(doc, p) for p in [*shared, *operation.get("parameters", [])]]


def test_every_route_is_documented_and_every_operation_routed() -> None:
    doc = openapi.document()
    app = create_app(Settings(secret_keys=TEST_SECRET_KEYS, snapshot_keys=TEST_SNAPSHOT_KEYS))
    routes = {(route.method, route.resource.canonical): route.name or ""
              for route in app.router.routes() if route.method != "HEAD" and route.resource is not None}
    documented = {(method, path): operation for method, path, operation in _documented_operations(doc)}

    undocumented = sorted(key for key, name in routes.items()
                          if name not in UNCHECKED_ROUTES and not name.startswith(CONSOLE_ROUTE_PREFIXES)
                          and key not in documented)
    assert not undocumented, f"routes missing from the OpenAPI document: {undocumented}"
    unrouted = sorted(key for key in documented if key not in routes)
    assert not unrouted, f"documented operations the gateway does not route: {unrouted}"

    for (method, path), operation in documented.items():
        name = routes[method, path]
        expected: list[dict[str, list[str]]] = (
            [{openapi.API_KEY: []}] if name.startswith(INGEST_ROUTE_PREFIX)
            else [{openapi.OPERATOR_TOKEN: []}] if name.startswith(OPERATOR_ROUTE_PREFIX) else [])
        assert operation["security"] == expected, (method, path, name)
        idempotency = [p for p in _parameters(doc, path, operation)
                       if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        assert [p["required"] for p in idempotency] == ([True] if method in MUTATING else []), (method, path)

    operation_ids = [operation["operationId"] for operation in documented.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_document_is_valid_openapi_31() -> None:
    doc = openapi.document()
    assert doc["openapi"] == "3.1.0"
    # The OpenAPI 3.1 meta-schema that schemathesis ships: structure only, not the schemas inside.
    schemathesis.openapi.from_dict(doc).validate()
    for ref in set(_refs(doc)):
        _resolve(doc, {"$ref": ref})
    for method, path, operation in _documented_operations(doc):
        declared = {p["name"] for p in _parameters(doc, path, operation) if p["in"] == "path"}
        assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}, (method, path)
    # Each schema is valid JSON Schema 2020-12 and compiles (patterns, references) in the document.
    for name, schema in doc["components"]["schemas"].items():
        jsonschema_rs.meta.validate(schema)
        jsonschema_rs.Draft202012Validator({**doc, "$ref": f"#/components/schemas/{name}"})


async def test_served_document_is_the_built_one() -> None:
    response = await openapi.serve(make_mocked_request("GET", "/api/v1/openapi.json"))
    assert response.status == 200 and response.content_type == "application/json"
    assert isinstance(response.body, bytes) and json.loads(response.body) == openapi.document()


# --- the running gateway against the document -----------------------------------------------------

FLOW_REFERENCE = "openapi-fuzz-flow"


def _seed(stack: Stack, admin_token: str, api_key: str, *, callback: bool = True) -> dict[str, str]:
    """A project with a key, an alert destination and (on a stack that allows private targets) a
    callback, and a flow in the API key's project: real values for the path parameters, so
    requests get past 404."""
    with requests.Session() as http:
        def send(method: str, path: str, body: Any, token: str) -> dict[str, Any]:
            response = http.request(method, stack.base_url + path, json=body, timeout=10, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
            assert response.status_code < 300, response.text
            return response.json()

        project_id = send("POST", "/api/v1/projects", {"name": "openapi fuzz"}, admin_token)["id"]
        in_project = f"/api/v1/projects/{project_id}"
        key_id = send("POST", in_project + "/keys", {"label": "fuzz"}, admin_token)["id"]
        destination_id = send("POST", in_project + "/alert-destinations",
                              {"type": "email", "target": "ops@example.com"}, admin_token)["id"]
        if callback:
            send("PUT", in_project + "/repair-callback", {"url": "http://127.0.0.1:9/repair"}, admin_token)
        send("POST", "/api/v1/receipt", {"reference": FLOW_REFERENCE, "event_type": "invoice.paid",
                                         "effect_type": "grant_access"}, api_key)
        deadline = time.monotonic() + 30
        while http.get(f"{stack.base_url}/api/v1/flows/{FLOW_REFERENCE}", timeout=10,
                       headers={"Authorization": f"Bearer {api_key}"}).status_code != 200:
            assert time.monotonic() < deadline, "the seeded flow never reached the read model"
            time.sleep(0.2)
    return {"project_id": project_id, "key_id": key_id, "destination_id": destination_id,
            "reference": FLOW_REFERENCE}


def _report(title: str, exc: BaseException) -> str:
    lines = [line if len(line) <= 300 else line[:300] + " ..." for line in str(exc).splitlines()]
    return "\n".join([f"=== {title} ===", *lines])


def _strategy(operation: schemathesis.APIOperation, seeded: dict[str, str]) -> st.SearchStrategy:
    """Valid requests on the seeded resources and on random ids; invalid ones where there is
    something (a body, a query) to get wrong."""
    seeded = {name: value for name, value in seeded.items() if "{" + name + "}" in operation.path}
    strategies = [operation.as_strategy(GenerationMode.POSITIVE, path_parameters=seeded)]
    if seeded:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE))
    if operation.body or operation.query:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=seeded))
    return st.one_of(strategies)


def _fuzz(operation: schemathesis.APIOperation, base_url: str, token: str | None,
          seeded: dict[str, str], http: requests.Session) -> str | None:
    """Run one operation's examples; the failure report, or None."""
    mutating = operation.method.upper() in MUTATING

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(case=_strategy(operation, seeded), anonymous=st.sampled_from([False] * 7 + [True]),
           replay=st.booleans())
    def run(case: schemathesis.Case, anonymous: bool, replay: bool) -> None:
        # A real credential (mostly) and a fresh key replace the generated ones: otherwise nearly
        # every request would stop at 401, or be answered as a replay of another.
        headers = {"Authorization": f"Bearer {token}" if token and not anonymous else ""}
        if mutating:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        response = case.call(base_url=base_url, session=http, headers=headers, timeout=15)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if mutating and replay:
            again = case.call(base_url=base_url, session=http, headers=headers, timeout=15)
            case.validate_response(again, checks=CHECKS, headers=headers)
            if response.status_code < 300:
                assert again.status_code == response.status_code, (response.status_code, again.status_code)
                # Schemathesis lowercases header names and lists their values.
                assert again.headers.get("idempotent-replayed") == ["true"]

    try:
        run()
    # Schemathesis raises its check failures as a BaseExceptionGroup. Every operation runs, and
    # all failures are reported together.
    except (Exception, BaseExceptionGroup) as exc:
        return _report(operation.label, exc)
    return None


@pytest.mark.e2e
def test_gateway_keeps_to_its_document(stack: Stack, admin_token: str, project: ProjectKey) -> None:
    started = time.monotonic()
    seeded = _seed(stack, admin_token, project.api_key)
    # Loaded from the gateway itself: the route serves the document, without credentials.
    schema = schemathesis.openapi.from_url(stack.base_url + "/api/v1/openapi.json")
    tokens = {openapi.API_KEY: project.api_key, openapi.OPERATOR_TOKEN: admin_token}
    failures = []
    with requests.Session() as http:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"schemathesis cannot read an operation: {result.err()}"
            operation = result.ok()
            security = schema.raw_schema["paths"][operation.path][operation.method.lower()]["security"]
            token = tokens[next(iter(security[0]))] if security else None
            if failure := _fuzz(operation, stack.base_url, token, seeded, http):
                failures.append(failure)
    elapsed = time.monotonic() - started
    assert not failures, (f"{len(failures)} operation(s) break the contract ({elapsed:.0f} s):\n\n"
                          + "\n\n".join(failures))


def _cursor(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


HardInput = tuple[str, str, dict[str, str], dict[str, str] | None, Any]

# (method, path, path parameters besides the seeded ones, query, body). Each must get a documented
# answer (404, 400, 422 ...); each got a 500 when it was added.
HARD_INPUTS: list[HardInput] = [
    # A NUL byte in a path parameter, on its way into PostgreSQL text.
    ("GET", "/api/v1/flows/{reference}", {"reference": "a%00b"}, None, None),
    ("GET", "/api/v1/projects/{project_id}", {"project_id": "prj_%00"}, None, None),
    ("POST", "/api/v1/projects/{project_id}/keys/{key_id}/revoke", {"key_id": "key_%00"}, None, None),
    ("DELETE", "/api/v1/projects/{project_id}/alert-destinations/{destination_id}",
     {"destination_id": "dst_%00"}, None, None),
    # ... and in URLs, which the URL checks let through.
    ("PUT", "/api/v1/projects/{project_id}/repair-callback", {}, None, {"url": "http://a\x00b/"}),
    ("POST", "/api/v1/projects/{project_id}/alert-destinations", {}, None,
     {"type": "slack", "target": "https://a\x00b/"}),
    # limit: str.isdigit() accepts digits int() cannot read; int() refuses more than 4300 digits.
    ("GET", "/api/v1/projects", {}, {"limit": "\u00b2"}, None),
    ("GET", "/api/v1/projects", {}, {"limit": "1" * 5000}, None),
    # Cursors: a time that overflows when moved to UTC; a boolean, and an integer beyond bigint, as seq.
    ("GET", "/api/v1/projects", {}, {"cursor": _cursor(["0001-01-01T00:00:00+01:00", "prj_x"])}, None),
    ("GET", "/api/v1/projects/{project_id}/audit-log", {}, {"cursor": _cursor([True])}, None),
    ("GET", "/api/v1/projects/{project_id}/audit-log", {}, {"cursor": _cursor([2**63])}, None),
]

# Where the server resolves callback and webhook hosts (private targets not allowed, as in
# production): host names the IDNA codec refuses before any DNS query.
HARD_HOSTS: list[HardInput] = [
    ("PUT", "/api/v1/projects/{project_id}/repair-callback", {}, None, {"url": "https://a..b/"}),
    ("PUT", "/api/v1/projects/{project_id}/repair-callback", {}, None, {"url": "https://\u2ff0.example.com/"}),
    ("POST", "/api/v1/projects/{project_id}/alert-destinations", {}, None,
     {"type": "slack", "target": "https://" + "a" * 64 + ".example.com/"}),
]


def _check_hard_inputs(stack: Stack, admin_token: str, project: ProjectKey, inputs: list[HardInput],
                       seeded: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(stack.base_url + "/api/v1/openapi.json")
    failures = []
    with requests.Session() as http:
        for method, path, path_parameters, query, body in inputs:
            token = project.api_key if path.startswith("/api/v1/flows/") else admin_token
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            in_path = {name: value for name, value in seeded.items() if "{" + name + "}" in path}
            case = schema[path][method].Case(
                path_parameters={**in_path, **path_parameters}, query=query,
                **({"body": body, "media_type": "application/json"} if body is not None else {}))
            try:
                response = case.call(base_url=stack.base_url, session=http, headers=headers, timeout=15)
                case.validate_response(response, checks=CHECKS, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:
                title = f"{method} {path} {path_parameters or ''} {query or ''} {body or ''}"
                failures.append(_report(title, exc))
    assert not failures, (f"{len(failures)} of {len(inputs)} hard inputs break the contract:\n\n"
                          + "\n\n".join(failures))


@pytest.mark.e2e
def test_hard_inputs_keep_to_the_document(stack: Stack, admin_token: str, project: ProjectKey) -> None:
    _check_hard_inputs(stack, admin_token, project, HARD_INPUTS, _seed(stack, admin_token, project.api_key))


@pytest.mark.e2e
def test_hard_hosts_keep_to_the_document(stack_factory: Any, admin_token: str, project: ProjectKey) -> None:
    stack = stack_factory(SENDPROMPTLY_ALLOW_PRIVATE_TARGETS="0")
    seeded = _seed(stack, admin_token, project.api_key, callback=False)
    _check_hard_inputs(stack, admin_token, project, HARD_HOSTS, seeded)
