"""The control plane through the operator API, on the real gateway, Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import aiohttp
import pytest

from api_gateway.idempotency import fingerprint
from harness.kafka import read_topic
from harness.stack import Stack
from sendpromptly.bootstrap import create_operator, revoke_tokens
from store.db import open_pool
from store.idempotency import claim
from tests.support.api import Api, eventually
from tests.support.operator_actions import HTTPS_CALLBACK, new_project
from topics import AUDIT

pytestmark = pytest.mark.e2e


async def test_the_seed_checklist_gates_live_mode_until_each_prerequisite_exists(operator_api: Api) -> None:
    project = await new_project(operator_api)
    assert (project["mode"] == "test" and project["timeout_minutes"] == 30
            and project["snapshots_enabled"] is False)
    base = f"/api/v1/projects/{project['id']}"

    async def go_live() -> tuple[int, dict]:
        status, doc, _ = await operator_api.send("PATCH", base, {"mode": "live"})
        return status, doc

    status, refused = await go_live()
    assert status == 409
    assert {e["field"] for e in refused["errors"]} == {"repair_callback_url", "api_keys",
                                                       "alert_destinations"}

    status, callback, _ = await operator_api.send("PUT", base + "/repair-callback", {"url": HTTPS_CALLBACK})
    assert status == 200 and callback["url"] == HTTPS_CALLBACK
    assert callback["signing_secret"].startswith("whsec_")
    assert {e["field"] for e in (await go_live())[1]["errors"]} == {"api_keys", "alert_destinations"}

    status, key, _ = await operator_api.send("POST", base + "/keys", {"label": "Production key"})
    assert status == 201 and key["key"].startswith("sk_") and key["label"] == "Production key"
    assert {e["field"] for e in (await go_live())[1]["errors"]} == {"alert_destinations"}

    status, destination, _ = await operator_api.send("POST", base + "/alert-destinations",
                                                     {"type": "email", "target": "ops@example.com"})
    assert status == 201 and destination["id"].startswith("dst_")

    status, live = await go_live()
    assert status == 200 and live["mode"] == "live"


async def test_live_mode_refuses_a_plain_http_callback(operator_api: Api) -> None:
    project = await new_project(operator_api)
    base = f"/api/v1/projects/{project['id']}"
    await operator_api.send("PUT", base + "/repair-callback", {"url": "http://127.0.0.1:9/repair"})
    await operator_api.send("POST", base + "/keys", {"label": "k"})
    await operator_api.send("POST", base + "/alert-destinations",
                            {"type": "email", "target": "ops@example.com"})
    status, refused, _ = await operator_api.send("PATCH", base, {"mode": "live"})
    assert status == 409 and "https" in refused["detail"]


async def test_keys_are_listed_without_their_secret_and_a_revoked_key_is_refused(
        operator_api: Api, http: aiohttp.ClientSession, stack: Stack) -> None:
    project = await new_project(operator_api)
    base = f"/api/v1/projects/{project['id']}/keys"
    _, old, _ = await operator_api.send("POST", base, {"label": "Staging worker"})
    _, new, _ = await operator_api.send("POST", base, {"label": "CI validation"})

    status, listed = await operator_api.get(base)
    assert status == 200
    assert [k["label"] for k in listed["items"]] == ["CI validation", "Staging worker"]
    assert all("key" not in k and k["prefix"].startswith("sk_") and len(k["last_four"]) == 4
               for k in listed["items"])

    old_client, new_client = Api(http, stack.base_url, old["key"]), Api(http, stack.base_url, new["key"])
    assert (await old_client.receipt("inv_rotation"))[0] == 202
    # Both live at once: rotation needs no downtime.
    assert (await new_client.receipt("inv_rotation"))[0] == 202

    status, revoked, _ = await operator_api.send("POST", f"{base}/{old['id']}/revoke")
    assert status == 200 and revoked["revoked"] is True
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, problem = await eventually(lambda: old_client.receipt("inv_after_revoke"), lambda a: a[0] == 401,
                                       timeout=5)
    assert loop.time() - started <= 5
    assert problem["status"] == 401
    assert (await new_client.receipt("inv_after_revoke"))[0] == 202

    # Usage is recorded in batches, not by a write per request.
    _, listed = await eventually(lambda: operator_api.get(base),
                                 lambda a: all(k["last_used_at"] for k in a[1]["items"]), timeout=15)
    assert all(k["last_used_at"] >= k["created_at"] for k in listed["items"])


async def test_a_member_sees_only_their_projects_and_gets_404_elsewhere(
        operator_api: Api, http: aiohttp.ClientSession, stack: Stack, database_url: str) -> None:
    mine, theirs = await new_project(operator_api, "A"), await new_project(operator_api, "B")
    member = await create_operator(database_url, email="member@example.com", is_admin=False,
                                   project_ids=[mine["id"]], password=None)
    as_member = Api(http, stack.base_url, member.token)

    status, listed = await as_member.get("/api/v1/projects")
    assert status == 200 and [p["id"] for p in listed["items"]] == [mine["id"]]

    other = f"/api/v1/projects/{theirs['id']}"
    for method, path, body in [
        ("GET", other, None), ("PATCH", other, {"name": "x"}),
        ("GET", other + "/keys", None), ("POST", other + "/keys", {"label": "x"}),
        ("POST", other + "/keys/key_x/revoke", None),
        ("GET", other + "/repair-callback", None),
        ("PUT", other + "/repair-callback", {"url": HTTPS_CALLBACK}),
        ("POST", other + "/repair-callback/rotate-secret", None),
        ("GET", other + "/alert-destinations", None),
        ("POST", other + "/alert-destinations", {"type": "email", "target": "a@example.com"}),
        ("DELETE", other + "/alert-destinations/dst_x", None),
        ("GET", other + "/audit-log", None),
    ]:
        status, problem, headers = await as_member.send(method, path, body)
        assert status == 404, (method, path, problem)
        assert headers["Content-Type"].startswith("application/problem+json")


async def test_a_revoked_operator_token_gets_401(operator_api: Api, http, stack: Stack,
                                                 database_url: str) -> None:
    member = await create_operator(database_url, email="leaver@example.com", is_admin=True, project_ids=[],
                                   password=None)
    as_member = Api(http, stack.base_url, member.token)
    assert (await as_member.get("/api/v1/projects"))[0] == 200
    await revoke_tokens(database_url, "leaver@example.com")
    _, problem = await eventually(lambda: as_member.get("/api/v1/projects"), lambda a: a[0] == 401,
                                  timeout=5)
    assert problem["title"] == "Unauthorized"


async def test_idempotency_replays_refuses_another_body_and_conflicts_in_flight(
        operator_api: Api, database_url: str, admin_token: str, stack: Stack) -> None:
    key = f"create-{uuid.uuid4().hex}"
    first = await operator_api.send("POST", "/api/v1/projects", {"name": "Once"}, idempotency_key=key)
    again = await operator_api.send("POST", "/api/v1/projects", {"name": "Once"}, idempotency_key=key)
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert again[2].get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first[2]
    _, listed = await operator_api.get("/api/v1/projects")
    assert [p["name"] for p in listed["items"]].count("Once") == 1

    status, problem, _ = await operator_api.send("POST", "/api/v1/projects", {"name": "Other"},
                                                 idempotency_key=key)
    assert status == 422 and problem["type"].endswith("idempotency-key-reused")

    # Hold a key in flight the way a slow first request would, then send the same request.
    operator_id = await _whoami(database_url, admin_token)
    body = b'{"name":"Slow"}'
    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        await claim(conn, operator_id, "slow-key", fingerprint("POST", "/api/v1/projects", body))
    await pool.close()
    async with operator_api.session.post(stack.base_url + "/api/v1/projects", data=body,
                                         headers={**operator_api.headers("slow-key"),
                                                  "Content-Type": "application/json"}) as response:
        assert response.status == 409
        assert (await response.json(content_type=None))["type"].endswith("idempotency-key-in-flight")


async def test_a_missing_idempotency_key_is_a_400(operator_api: Api, stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {operator_api.token}"}
    async with operator_api.session.post(stack.base_url + "/api/v1/projects", json={"name": "x"},
                                         headers=headers) as response:
        assert response.status == 400
        assert (await response.json(content_type=None))["type"].endswith("idempotency-key-required")


async def test_every_action_is_audited_newest_first_with_paging(operator_api: Api, stack: Stack) -> None:
    project = await new_project(operator_api)
    base = f"/api/v1/projects/{project['id']}"
    await operator_api.send("PATCH", base, {"name": "Billing EU", "timeout_minutes": 5})
    await operator_api.send("PUT", base + "/repair-callback", {"url": HTTPS_CALLBACK})
    await operator_api.send("POST", base + "/repair-callback/rotate-secret")
    _, key, _ = await operator_api.send("POST", base + "/keys", {"label": "k"})
    await operator_api.send("POST", f"{base}/keys/{key['id']}/revoke")
    _, dst, _ = await operator_api.send("POST", base + "/alert-destinations",
                                        {"type": "email", "target": "a@example.com"})
    await operator_api.send("DELETE", f"{base}/alert-destinations/{dst['id']}")

    async def every_page() -> list[str]:
        actions, cursor = [], None
        while True:
            status, entries = await operator_api.get(base + "/audit-log?limit=3"
                                                     + (f"&cursor={cursor}" if cursor else ""))
            assert status == 200
            actions += [e["action"] for e in entries["items"]]
            for entry in entries["items"]:
                assert entry["actor"].startswith("operator:opr_") and entry["source_address"] == "127.0.0.1"
            cursor = entries["next_cursor"]
            if cursor is None:
                return actions

    # The audit sink appends what the gateway published: wait until all eight are in.
    actions = await eventually(every_page, lambda found: len(found) >= 8)
    assert actions == ["destination.removed", "destination.added", "api_key.revoked", "api_key.created",
                       "callback.secret_rotated", "callback.set", "project.updated", "project.created"]


async def test_no_secret_is_stored_logged_or_published(operator_api: Api, stack: Stack, database_url: str,
                                                        services, topic_prefix: str) -> None:
    project = await new_project(operator_api)
    base = f"/api/v1/projects/{project['id']}"
    _, key, _ = await operator_api.send("POST", base + "/keys", {"label": "Production key"},
                                        idempotency_key="k")
    _, callback, _ = await operator_api.send("PUT", base + "/repair-callback", {"url": HTTPS_CALLBACK})
    # A replay answers from the stored copy, which must not hold the key.
    _, replayed, headers = await operator_api.send("POST", base + "/keys", {"label": "Production key"},
                                                   idempotency_key="k")
    assert (headers["Idempotent-Replayed"] == "true" and replayed["key"] is None
            and replayed["id"] == key["id"])
    assert (await Api(operator_api.session, stack.base_url, key["key"]).receipt("inv_secret"))[0] == 202
    published = await eventually(lambda: _audit_topic_text(services.kafka_bootstrap, topic_prefix),
                                 lambda text: "api_key.created" in text and "callback.set" in text,
                                 timeout=15)

    dump = subprocess.run(["pg_dump", "--data-only", database_url], capture_output=True, text=True,
                          check=True).stdout
    assert key["prefix"] in dump  # the dump is real and holds the key's visible part
    logs = stack.logs()
    signing_secret = callback["signing_secret"]
    for secret in (key["key"], signing_secret, signing_secret.removeprefix("whsec_"), operator_api.token):
        assert secret not in dump
        assert secret not in logs
        assert secret not in published


async def _whoami(database_url: str, token: str) -> str:
    from common.operator_tokens import hash_token
    from store.operators import operator_for_token_hash

    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        operator = await operator_for_token_hash(conn, hash_token(token))
    await pool.close()
    assert operator is not None
    return operator.id


async def _audit_topic_text(bootstrap: str, prefix: str) -> str:
    return "\n".join(value.decode() for _, value in await read_topic(bootstrap, AUDIT.name(prefix)))
