"""Admins manage operators through the operator API (issue #11, item 5), on the real gateway, Kafka
and PostgreSQL: invite, membership, tokens, removal, each audited with the admin as actor; and
``sendpromptly demo`` leaves its project, key and operator in the audit log."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import pytest

from api_gateway.app import CREDENTIAL_CACHE_SECONDS
from harness.stack import Stack
from tests.support.api import Api, eventually

pytestmark = pytest.mark.e2e

OPERATORS = "/api/v1/operators"


async def new_project(api: Api, name: str) -> str:
    status, project, _ = await api.send("POST", "/api/v1/projects", {"name": name})
    assert status == 201, project
    return project["id"]


async def refused_within_cache_period(api: Api) -> None:
    """``api``'s token is refused once the gateway's credential cache has let go of it."""
    await eventually(lambda: api.get("/api/v1/projects"), lambda a: a[0] == 401,
                     timeout=CREDENTIAL_CACHE_SECONDS + 1)


async def audit_actions(admin: Api, project_id: str, expected: set[str]) -> list[dict]:
    """The project's audit log once the audit sink has appended every action in ``expected``."""
    _, page = await eventually(
        lambda: admin.get(f"/api/v1/projects/{project_id}/audit-log?limit=200"),
        lambda a: expected <= {e["action"] for e in a[1]["items"]}, timeout=30)
    return page["items"]


async def test_an_invited_member_sees_only_their_project_until_removed(
        operator_api: Api, http: aiohttp.ClientSession, stack: Stack, admin_token: str) -> None:
    mine, theirs = await new_project(operator_api, "Mine"), await new_project(operator_api, "Theirs")

    status, invited, _ = await operator_api.send("POST", OPERATORS, {"email": "new@example.com"})
    assert status == 201, invited
    assert invited["token"].startswith("op_") and invited["password"] and invited["admin"] is False
    member = Api(http, stack.base_url, invited["token"])
    operator_id = invited["id"]

    status, added, _ = await operator_api.send("PUT", f"/api/v1/projects/{mine}/members/{operator_id}")
    assert status == 200 and added["project_ids"] == [mine]
    _, listed = await eventually(lambda: member.get("/api/v1/projects"),
                                 lambda a: a[0] == 200 and len(a[1]["items"]) == 1, timeout=5)
    assert [p["id"] for p in listed["items"]] == [mine]
    assert (await member.get(f"/api/v1/projects/{theirs}"))[0] == 404

    # A member is no admin: the operator API's administration is refused with a problem document.
    status, problem, headers = await member.send("POST", OPERATORS, {"email": "sneaky@example.com"})
    assert status == 403 and headers["Content-Type"].startswith("application/problem+json")
    assert "admin" in problem["detail"]

    status, second, _ = await operator_api.send("POST", f"{OPERATORS}/{operator_id}/tokens")
    assert status == 201 and second["token"].startswith("op_")
    second_member = Api(http, stack.base_url, second["token"])
    assert (await second_member.get("/api/v1/projects"))[0] == 200
    revoke = f"{OPERATORS}/{operator_id}/tokens/{second['id']}/revoke"
    status, revoked, _ = await operator_api.send("POST", revoke)
    assert status == 200 and revoked["revoked"] is True
    await refused_within_cache_period(second_member)
    assert (await member.get("/api/v1/projects"))[0] == 200

    status, removed, _ = await operator_api.send("POST", f"{OPERATORS}/{operator_id}/deactivate")
    assert status == 200 and removed["active"] is False
    await refused_within_cache_period(member)

    _, page = await operator_api.get(OPERATORS)
    assert {o["email"]: o["active"] for o in page["items"]}["new@example.com"] is False

    entries = await audit_actions(operator_api, mine, {
        "operator.member_added", "operator.token_issued", "operator.token_revoked", "operator.removed"})
    admin_id = next(o["id"] for o in page["items"] if o["id"] != operator_id and o["admin"])
    assert all(e["actor"] == f"operator:{admin_id}" for e in entries if e["action"].startswith("operator."))


async def test_membership_can_be_taken_away_and_every_action_is_idempotent(
        operator_api: Api, http: aiohttp.ClientSession, stack: Stack) -> None:
    project = await new_project(operator_api, "Shared")
    invite = {"email": "twice@example.com", "project_ids": [project]}
    first = await operator_api.send("POST", OPERATORS, invite, idempotency_key="invite-twice")
    again = await operator_api.send("POST", OPERATORS, invite, idempotency_key="invite-twice")
    assert first[0] == again[0] == 201 and again[2].get("Idempotent-Replayed") == "true"
    assert again[1]["token"] is None and again[1]["secrets_redacted"] is True
    status, problem, _ = await operator_api.send("POST", OPERATORS, invite)
    assert status == 409 and problem["type"].endswith("email-taken")

    member = Api(http, stack.base_url, first[1]["token"])
    assert (await member.get(f"/api/v1/projects/{project}"))[0] == 200
    path = f"/api/v1/projects/{project}/members/{first[1]['id']}"
    for _ in range(2):
        status, doc, _ = await operator_api.send("DELETE", path)
        assert status == 200 and doc["project_ids"] == []
    await eventually(lambda: member.get(f"/api/v1/projects/{project}"), lambda a: a[0] == 404,
                     timeout=CREDENTIAL_CACHE_SECONDS + 1)
    entries = await audit_actions(operator_api, project, {"operator.created", "operator.member_removed"})
    assert [e["action"] for e in entries].count("operator.member_removed") == 1


async def test_the_demo_goes_through_the_audited_actions(
        operator_api: Api, stack: Stack, database_url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "sendpromptly", "demo", "--json"], capture_output=True,
                          text=True, timeout=60, env={**stack.env, "SENDPROMPTLY_DATABASE_URL": database_url})
    assert done.returncode == 0, done.stderr
    project_id = json.loads(done.stdout)["project_id"]
    entries = await audit_actions(operator_api, project_id,
                                  {"project.created", "api_key.created", "operator.created",
                                   "operator.token_issued"})
    assert {e["actor"] for e in entries} == {"cli:demo"}
