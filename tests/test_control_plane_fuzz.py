"""No input makes the operator API answer 5xx: hypothesis sends arbitrary JSON to every write."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.stack import Stack

pytestmark = pytest.mark.e2e

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)
_fields = st.fixed_dictionaries({}, optional={
    "name": _json, "mode": st.sampled_from(["test", "live", "LIVE", ""]) | _json,
    "timeout_minutes": st.integers(-5, 20000) | _json, "snapshots_enabled": _json, "label": _json,
    "url": st.sampled_from(["https://127.0.0.1/x", "ftp://x", "https://u:p@h/x", "http://[::1]:99/x",
                            "https://"]) | _json,
    "type": st.sampled_from(["email", "slack", "sms"]) | _json, "target": _json,
})


def _call(stack: Stack, token: str, method: str, path: str, body: bytes, key: str) -> int:
    request = urllib.request.Request(stack.base_url + path, data=body, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        assert error.headers["Content-Type"].startswith("application/problem+json")
        return error.code


@pytest.fixture
def project_id(stack: Stack, admin_token: str) -> str:
    request = urllib.request.Request(
        stack.base_url + "/api/v1/projects", data=b'{"name":"fuzz"}', method="POST",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json",
                 "Idempotency-Key": "fuzz"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["id"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_json | _fields, target=st.sampled_from([
    ("POST", "/api/v1/projects"), ("PATCH", "/api/v1/projects/{p}"), ("POST", "/api/v1/projects/{p}/keys"),
    ("PUT", "/api/v1/projects/{p}/repair-callback"), ("POST", "/api/v1/projects/{p}/alert-destinations"),
]), raw=st.booleans())
def test_no_body_gets_a_server_error(stack: Stack, admin_token: str, project_id: str, body: object,
                                     target: tuple[str, str], raw: bool) -> None:
    method, path = target
    payload = json.dumps(body).encode() if not raw else json.dumps(body).encode()[:-1]  # raw: truncated JSON
    status = _call(stack, admin_token, method, path.format(p=project_id), payload, uuid.uuid4().hex)
    assert status < 500
