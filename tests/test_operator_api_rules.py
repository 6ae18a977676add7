"""Operator API rules on the real gateway (issue #11): list filters and paging, live mode's
prerequisites for as long as a project is live, http targets in test mode, one Idempotency-Key, the
callback secret's overlap on a new URL, and a client that leaves mid-request."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from harness.stack import Stack
from store.db import open_pool
from store.incidents import apply_event
from tests.support.api import Api
from tests.support.operator_actions import HTTPS_CALLBACK, new_project
from topics import IncidentEvent
from topics.fields import Mode, parse_timestamp
from topics.messages import IncidentEventType, IncidentReason, Resolution

pytestmark = pytest.mark.e2e


async def live_project(api: Api) -> tuple[str, str, str]:
    """A live project with one key and one email destination: its path, key id and destination id."""
    base = f"/api/v1/projects/{(await new_project(api))['id']}"
    assert (await api.send("PUT", base + "/repair-callback", {"url": HTTPS_CALLBACK}))[0] == 200
    _, key, _ = await api.send("POST", base + "/keys", {"label": "only key"})
    _, destination, _ = await api.send("POST", base + "/alert-destinations",
                                       {"type": "email", "target": "ops@example.com"})
    status, doc, _ = await api.send("PATCH", base, {"mode": "live"})
    assert status == 200, doc
    return base, key["id"], destination["id"]


async def test_every_list_refuses_a_query_parameter_it_does_not_take(operator_api: Api) -> None:
    base = f"/api/v1/projects/{(await new_project(operator_api))['id']}"
    for path in ("/api/v1/projects", "/api/v1/operators", base + "/keys", base + "/alert-destinations",
                 base + "/audit-log", base + "/incidents"):
        status, problem = await operator_api.get(path + "?limit=5&sttaus=open")
        assert status == 400, (path, problem)
        assert problem["type"].endswith("/unknown-query-parameter") and "sttaus" in problem["detail"]
        assert problem["errors"] == [{"field": "sttaus", "message": "is not a parameter of this list"}]
    # A filter a list does not have is unknown too, never ignored.
    status, problem = await operator_api.get(base + "/keys?mode=live")
    assert status == 400 and problem["errors"][0]["field"] == "mode"


async def test_incidents_are_filtered_by_status_mode_reason_and_reference(
        operator_api: Api, database_url: str) -> None:
    project_id = (await new_project(operator_api))["id"]
    now = datetime.now(UTC)
    opened = [("inc_a", "inv_1", "test", "timeout"), ("inc_b", "inv_1", "live", "failed_outcome"),
              ("inc_c", "inv_2", "live", "timeout")]
    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        for n, (name, reference, mode, reason) in enumerate(opened):
            # The read model the list reads, written as the read-model sink writes it.
            await apply_event(conn, IncidentEvent(
                event_id=f"ive_{uuid.uuid4().hex}", type=IncidentEventType.OPENED,
                incident_id=f"{name}{project_id[4:]}", project_id=project_id, reference=reference,
                mode=Mode(mode), actor="agents", occurred_at=now + timedelta(seconds=n),
                reason=IncidentReason(reason), deadline=now))
        await apply_event(conn, IncidentEvent(
            event_id=f"ive_{uuid.uuid4().hex}", type=IncidentEventType.RESOLVED,
            incident_id=f"inc_a{project_id[4:]}", project_id=project_id, reference="inv_1", mode=Mode.TEST,
            actor="agents", occurred_at=now + timedelta(seconds=5), resolution=Resolution.MANUAL))
    await pool.close()

    async def listed(query: str) -> list[str]:
        status, page = await operator_api.get(f"/api/v1/projects/{project_id}/incidents?{query}")
        assert status == 200, page
        return [i["id"][:5] for i in page["items"]]

    assert await listed("") == ["inc_c", "inc_b", "inc_a"]
    assert await listed("mode=live") == ["inc_c", "inc_b"]
    assert await listed("mode=test") == ["inc_a"]
    assert await listed("reason=timeout") == ["inc_c", "inc_a"]
    assert await listed("reference=inv_1") == ["inc_b", "inc_a"]
    assert await listed("status=open&mode=live&reason=timeout&reference=inv_2") == ["inc_c"]
    assert await listed("status=resolved") == ["inc_a"]
    status, problem = await operator_api.get(f"/api/v1/projects/{project_id}/incidents?mode=prod&reason=x")
    assert status == 400 and problem["type"].endswith("/invalid-filter")
    assert {e["field"] for e in problem["errors"]} == {"mode", "reason"}


async def test_keys_and_alert_destinations_page(operator_api: Api) -> None:
    base = f"/api/v1/projects/{(await new_project(operator_api))['id']}"
    for n in range(3):
        assert (await operator_api.send("POST", base + "/keys", {"label": f"k{n}"}))[0] == 201
        assert (await operator_api.send("POST", base + "/alert-destinations",
                                        {"type": "email", "target": f"ops{n}@example.com"}))[0] == 201
    for path, name in (("/keys", "label"), ("/alert-destinations", "target")):
        _, first = await operator_api.get(base + path + "?limit=2")
        _, rest = await operator_api.get(base + path + f"?limit=2&cursor={first['next_cursor']}")
        assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
        seen = [item[name] for item in first["items"] + rest["items"]]
        assert seen == sorted(seen, reverse=True) and len(set(seen)) == 3  # newest first, each once


async def test_a_live_project_keeps_its_prerequisites(operator_api: Api) -> None:
    base, key_id, destination_id = await live_project(operator_api)

    status, refused, _ = await operator_api.send("POST", f"{base}/keys/{key_id}/revoke")
    assert status == 409 and refused["type"].endswith("/live-prerequisites"), refused
    assert [e["field"] for e in refused["errors"]] == ["api_keys"] and "test mode" in refused["detail"]
    status, refused, _ = await operator_api.send("DELETE", f"{base}/alert-destinations/{destination_id}")
    assert status == 409 and [e["field"] for e in refused["errors"]] == ["alert_destinations"]
    status, refused, _ = await operator_api.send("PUT", base + "/repair-callback",
                                                 {"url": "http://127.0.0.1:9/repair"})
    assert status == 422 and "live mode needs https" in refused["errors"][0]["message"]
    status, refused, _ = await operator_api.send("POST", base + "/alert-destinations",
                                                 {"type": "slack", "target": "http://127.0.0.1:9/hook"})
    assert status == 422 and "live mode needs https" in refused["errors"][0]["message"]
    _, keys = await operator_api.get(base + "/keys")
    assert [k["revoked"] for k in keys["items"]] == [False]  # the refused revocation changed nothing

    # With a replacement first, the old one may go.
    assert (await operator_api.send("POST", base + "/keys", {"label": "new key"}))[0] == 201
    assert (await operator_api.send("POST", f"{base}/keys/{key_id}/revoke"))[0] == 200
    # Back in test mode, nothing is required any more.
    assert (await operator_api.send("PATCH", base, {"mode": "test"}))[0] == 200
    assert (await operator_api.send("DELETE", f"{base}/alert-destinations/{destination_id}"))[0] == 200


async def test_a_test_project_takes_an_http_slack_webhook_but_cannot_go_live_with_it(
        operator_api: Api) -> None:
    base = f"/api/v1/projects/{(await new_project(operator_api))['id']}"
    status, slack, _ = await operator_api.send("POST", base + "/alert-destinations",
                                               {"type": "slack", "target": "http://127.0.0.1:9/hook"})
    assert status == 201, slack
    assert (await operator_api.send("PUT", base + "/repair-callback", {"url": HTTPS_CALLBACK}))[0] == 200
    assert (await operator_api.send("POST", base + "/keys", {"label": "k"}))[0] == 201
    status, refused, _ = await operator_api.send("PATCH", base, {"mode": "live"})
    assert status == 409 and [e["field"] for e in refused["errors"]] == ["alert_destinations"]
    assert slack["id"] in refused["detail"] and "https" in refused["detail"]


async def test_two_idempotency_key_headers_are_a_400(operator_api: Api, stack: Stack) -> None:
    headers = [("Authorization", f"Bearer {operator_api.token}"), ("Idempotency-Key", "one"),
               ("Idempotency-Key", "two")]
    async with operator_api.session.post(stack.base_url + "/api/v1/projects", json={"name": "twice"},
                                         headers=headers) as response:
        problem = await response.json(content_type=None)
    assert response.status == 400 and problem["type"].endswith("/idempotency-key-repeated")
    _, listed = await operator_api.get("/api/v1/projects")
    assert "twice" not in [p["name"] for p in listed["items"]]


async def test_a_new_callback_url_keeps_the_old_secret_for_24_hours(operator_api: Api) -> None:
    base = f"/api/v1/projects/{(await new_project(operator_api))['id']}"
    assert (await operator_api.send("PUT", base + "/repair-callback", {"url": HTTPS_CALLBACK}))[0] == 200
    status, _, _ = await operator_api.send("PUT", base + "/repair-callback", {"url": HTTPS_CALLBACK + "/v2"})
    assert status == 200
    _, callback = await operator_api.get(base + "/repair-callback")
    new, old = callback["secrets"]
    assert new["retires_at"] is None
    retires_in = parse_timestamp(old["retires_at"]) - parse_timestamp(new["created_at"])  # type: ignore[operator]
    assert timedelta(hours=23, minutes=59) < retires_in <= timedelta(hours=24, seconds=5)


async def _metric(http: aiohttp.ClientSession, stack: Stack, status: str) -> float:
    async with http.get(stack.base_url + "/metrics") as response:
        text = await response.text()
    prefix = 'sendpromptly_http_requests_total{method="POST",route="operator.projects.create",status="'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix + status))


async def test_a_client_that_leaves_mid_request_is_a_499_with_one_log_line(
        operator_api: Api, http: aiohttp.ClientSession, stack: Stack) -> None:
    host, port = stack.base_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(("POST /api/v1/projects HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {operator_api.token}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": ").encode())
    await writer.drain()
    await asyncio.sleep(0.5)  # the handler is reading the body now
    writer.close()
    await writer.wait_closed()

    async def counted() -> float:
        return await _metric(http, stack, "499")

    for _ in range(50):
        if await counted() == 1:
            break
        await asyncio.sleep(0.1)
    assert await counted() == 1
    assert await _metric(http, stack, "5") == 0
    log = stack.gateway.log_path.read_text()
    assert log.count("client closed the connection during POST /api/v1/projects") == 1
    assert "Traceback" not in log
