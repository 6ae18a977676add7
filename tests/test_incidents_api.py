"""Incidents through the operator API, on the real gateway, agents, read-model sink, Kafka and
PostgreSQL: a failed result opens one, and operators see, acknowledge, reprocess and resolve it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from confluent_kafka import Consumer, TopicPartition

from harness.kafka import read_topic
from harness.services import Services
from harness.stack import Stack
from sendpromptly.bootstrap import create_operator
from store.db import open_pool
from store.incidents import apply_event
from tests.conftest import ProjectKey
from tests.support.api import Api, eventually
from tests.support.operator_actions import incident_path, open_incident, set_callback
from topics import INCIDENTS, REPAIRS, IncidentEvent, RepairRequest, decode, flow_key
from topics.fields import Mode
from topics.messages import IncidentEventType, IncidentReason

pytestmark = pytest.mark.e2e


async def events_on(services: Services, topic: str, decode_as: type, **match: Any) -> list[Any]:
    messages: list[Any] = [decode(decode_as, value)
                           for _, value in await read_topic(services.kafka_bootstrap, topic)]
    return [m for m in messages if all(getattr(m, k) == v for k, v in match.items())]


def sink_caught_up(services: Services, topic_prefix: str, topic: str) -> bool:
    """Has the read-model sink committed every message now on ``topic``?"""
    consumer = Consumer({"bootstrap.servers": services.kafka_bootstrap,
                         "group.id": f"{topic_prefix}sendpromptly-sink-read-model"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return all(max(tp.offset, 0) >= consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed)
    finally:
        consumer.close()


async def test_a_failed_result_opens_an_incident_that_operators_see(
        api: Api, operator_api: Api, project: ProjectKey) -> None:
    incident = await open_incident(api, "inv_failed")
    assert incident["id"].startswith("inc_")
    assert {k: incident[k] for k in ("project_id", "reference", "mode", "reason", "status", "replays")} == {
        "project_id": project.project_id, "reference": "inv_failed", "mode": "test",
        "reason": "failed_outcome", "status": "open", "replays": []}
    assert incident["opened_at"] and incident["deadline"]
    assert not {"acknowledged_at", "resolved_at", "resolution"} & incident.keys()

    status, read = await operator_api.get(incident_path(incident["id"]))
    assert status == 200 and read == incident

    listing = f"/api/v1/projects/{project.project_id}/incidents"
    for query, expected in (("", [incident]), ("?status=open", [incident]), ("?status=acknowledged", []),
                            ("?status=resolved", [])):
        status, page = await operator_api.get(listing + query)
        assert status == 200 and page == {"items": expected, "next_cursor": None}, query
    status, problem = await operator_api.get(listing + "?status=closed")
    assert status == 400
    assert problem["errors"] == [{"field": "status",
                                  "message": "must be one of open, resolved, acknowledged"}]


async def test_acknowledge_reprocess_and_resolve(api: Api, operator_api: Api, project: ProjectKey,
                                                 services: Services, topic_prefix: str) -> None:
    incident = await open_incident(api, "inv_repair")
    await set_callback(operator_api, project.project_id)

    status, acknowledged, _ = await operator_api.send("POST", incident_path(incident["id"], "acknowledge"))
    assert status == 202 and acknowledged["acknowledged_at"] >= incident["opened_at"]
    assert (await operator_api.get(incident_path(incident["id"])))[1] == acknowledged
    # Acknowledging again (another request) keeps the first acknowledgement.
    status, again, _ = await operator_api.send("POST", incident_path(incident["id"], "acknowledge"))
    assert status == 202 and again["acknowledged_at"] == acknowledged["acknowledged_at"]
    # Open and acknowledged: the list narrowed to acknowledged ones has it.
    listing = f"/api/v1/projects/{project.project_id}/incidents"
    status, page = await operator_api.get(listing + "?status=acknowledged")
    assert status == 200 and [i["id"] for i in page["items"]] == [incident["id"]]

    # A double click: two requests with one Idempotency-Key make one replay.
    click = uuid.uuid4().hex
    reprocess = incident_path(incident["id"], "reprocess")
    status, first, _ = await operator_api.send("POST", reprocess, idempotency_key=click)
    assert status == 202 and first["replay_id"].startswith("rpl_") and set(first) == {"replay_id"}
    status, second, headers = await operator_api.send("POST", reprocess, idempotency_key=click)
    assert status == 202 and second == first and headers["Idempotent-Replayed"] == "true"
    replay_id = first["replay_id"]

    _, shown = await operator_api.get(incident_path(incident["id"]))
    (replay,) = shown["replays"]
    # The callbacks sink may already be trying the (unreachable) callback: attempts only grow.
    assert replay["replay_id"] == replay_id and replay.get("outcome") in (None, "failed")
    assert replay["requested_by"].startswith("operator:opr_")
    assert replay["requested_at"] >= incident["opened_at"]

    (repair,) = await events_on(services, REPAIRS.name(topic_prefix), RepairRequest)
    assert (repair.replay_id, repair.incident_id, repair.project_id, repair.reference) == (
        replay_id, incident["id"], project.project_id, "inv_repair")
    assert (repair.event_type, repair.effect_type, repair.mode) == ("invoice.paid", "grant_access", "test")
    key, _ = (await read_topic(services.kafka_bootstrap, REPAIRS.name(topic_prefix)))[0]
    assert key == flow_key(project.project_id, "inv_repair")

    status, resolved, _ = await operator_api.send("POST", incident_path(incident["id"], "resolve"),
                                                  {"note": "Granted access by hand."})
    assert status == 202
    assert (resolved["status"], resolved["resolution"]) == ("resolved", "manual")
    assert resolved["resolved_at"] >= acknowledged["acknowledged_at"]
    assert resolved["replays"] == shown["replays"]

    # Resolved is final: every further action is refused, whatever its key.
    for action, body in (("resolve", {"note": "again"}), ("reprocess", None), ("acknowledge", None)):
        status, problem, _ = await operator_api.send("POST", incident_path(incident["id"], action), body)
        assert status == 409 and problem["type"].endswith("/incident-resolved"), action
    assert len(await events_on(services, REPAIRS.name(topic_prefix), RepairRequest)) == 1

    # What went to Kafka: one event per action that changed something, keyed by the flow.
    operator_events = await events_on(services, INCIDENTS.name(topic_prefix), IncidentEvent,
                                      incident_id=incident["id"], actor=replay["requested_by"])
    assert sorted(e.type for e in operator_events) == ["acknowledged", "reprocess_requested", "resolved"]
    assert [e.replay_id for e in operator_events if e.type == "reprocess_requested"] == [replay_id]
    assert [(e.resolution, e.note) for e in operator_events if e.type == "resolved"] == [
        ("manual", "Granted access by hand.")]

    # Once the read-model sink has applied those same events from the topic, nothing has changed.
    topic = INCIDENTS.name(topic_prefix)
    await eventually(lambda: asyncio.to_thread(sink_caught_up, services, topic_prefix, topic), bool)
    _, listed = await operator_api.get(f"/api/v1/projects/{project.project_id}/incidents?status=resolved")
    assert listed["items"] == [resolved]
    # The audit log is appended by the audit sink, from the topic: wait for it to catch up.
    _, audit = await eventually(
        lambda: operator_api.get(f"/api/v1/projects/{project.project_id}/audit-log"),
        lambda answer: sum(e["action"].startswith("incident.") for e in answer[1]["items"]) >= 3)
    incident_actions = [e["action"] for e in audit["items"] if e["action"].startswith("incident.")]
    assert incident_actions == ["incident.resolved", "incident.reprocess_requested", "incident.acknowledged"]


async def test_reprocess_needs_a_callback_and_resolve_needs_a_note(api: Api, operator_api: Api) -> None:
    incident = await open_incident(api, "inv_checks")
    status, problem, _ = await operator_api.send("POST", incident_path(incident["id"], "reprocess"))
    assert status == 409 and problem["type"].endswith("/no-callback")

    resolve = incident_path(incident["id"], "resolve")
    for body, field in (({}, "note"), ({"note": " \n"}, "note"), ({"note": "x" * 2049}, "note"),
                        ({"note": "a\x00b"}, "note"), ({"note": "ok", "by": "me"}, "by")):
        status, problem, _ = await operator_api.send("POST", resolve, body)
        assert status == 422 and [e["field"] for e in problem["errors"]] == [field], body
    assert (await operator_api.get(incident_path(incident["id"])))[1]["status"] == "open"
    status, _, _ = await operator_api.send("POST", resolve, {"note": "é" * 1024})  # 2 KiB of UTF-8
    assert status == 202


async def test_another_projects_operator_gets_404_on_every_incident_route_and_flow_lookup(
        api: Api, operator_api: Api, project: ProjectKey, http: aiohttp.ClientSession, stack: Stack,
        database_url: str) -> None:
    incident = await open_incident(api, "inv_private")
    await set_callback(operator_api, project.project_id)
    _, other_project, _ = await operator_api.send("POST", "/api/v1/projects", {"name": "Other team"})
    member = await create_operator(database_url, email="member@example.com", is_admin=False,
                                   project_ids=[other_project["id"]], password=None)
    outsider = Api(http, stack.base_url, member.token)

    status, problem = await outsider.get(f"/api/v1/projects/{project.project_id}/incidents")
    assert status == 404 and problem["type"].endswith("/project-not-found")
    status, problem = await outsider.get(incident_path(incident["id"]))
    assert status == 404 and problem["type"].endswith("/incident-not-found")
    status, problem = await outsider.get(f"/api/v1/projects/{project.project_id}/flows/inv_private")
    assert status == 404 and problem["type"].endswith("/project-not-found")
    assert (await operator_api.get(f"/api/v1/projects/{project.project_id}/flows/inv_private"))[0] == 200
    status, problem = await operator_api.get(f"/api/v1/projects/{project.project_id}/flows/inv_nothing")
    assert status == 404 and problem["type"].endswith("/flow-not-found")
    for action, body in (("acknowledge", None), ("reprocess", None), ("resolve", {"note": "not mine"})):
        status, problem, _ = await outsider.send("POST", incident_path(incident["id"], action), body)
        assert status == 404 and problem["type"].endswith("/incident-not-found"), action
    # ... the same answer as for an incident that does not exist.
    status, missing, _ = await outsider.send("POST", incident_path("inc_doesnotexist", "acknowledge"))
    assert status == 404
    assert missing["detail"].replace("inc_doesnotexist", incident["id"]) == problem["detail"]

    status, unchanged = await operator_api.get(incident_path(incident["id"]))
    assert status == 200 and unchanged == incident
    assert (await outsider.get(f"/api/v1/projects/{other_project['id']}/incidents"))[1]["items"] == []


async def test_incidents_are_listed_newest_first_a_page_at_a_time(
        api: Api, operator_api: Api, project: ProjectKey) -> None:
    opened = [await open_incident(api, f"inv_page_{n}") for n in range(3)]
    listing = f"/api/v1/projects/{project.project_id}/incidents?limit=2"
    _, first = await operator_api.get(listing)
    _, second = await operator_api.get(listing + "&cursor=" + first["next_cursor"])
    assert [i["id"] for i in first["items"] + second["items"]] == [i["id"] for i in reversed(opened)]
    assert second["next_cursor"] is None

    status, _, _ = await operator_api.send("POST", incident_path(opened[1]["id"], "resolve"),
                                           {"note": "done"})
    assert status == 202
    _, still_open = await operator_api.get(listing + "&status=open")
    assert [i["id"] for i in still_open["items"]] == [opened[2]["id"], opened[0]["id"]]
    status, problem = await operator_api.get(listing + "&cursor=bm9wZQ")
    assert status == 400 and problem["type"].endswith("/invalid-cursor")


async def test_without_kafka_an_action_is_503_and_its_key_stays_usable(
        gateway_without_kafka: str, http: aiohttp.ClientSession, admin_token: str, project: ProjectKey,
        database_url: str) -> None:
    now = datetime.now(UTC)
    opened = IncidentEvent(
        event_id="ive_seeded", type=IncidentEventType.OPENED, incident_id="inc_seeded",
        project_id=project.project_id, reference="inv_seeded", mode=Mode.TEST, actor="agents",
        occurred_at=now, reason=IncidentReason.TIMEOUT, deadline=now - timedelta(seconds=2))
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            await apply_event(conn, opened)
        operator = Api(http, gateway_without_kafka, admin_token)
        for action, body in (("acknowledge", None), ("resolve", {"note": "by hand"})):
            for _ in range(2):  # the retry with the same key is tried again, not refused as in flight
                status, problem, headers = await operator.send(
                    "POST", incident_path("inc_seeded", action), body, idempotency_key=f"key-{action}")
                assert status == 503 and int(headers["Retry-After"]) > 0, problem
                assert "Idempotency-Key" in problem["detail"]
        async with pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT status, acknowledged_at FROM incidents WHERE id = 'inc_seeded'")).fetchone()
            audited = await (await conn.execute(
                "SELECT count(*) AS n FROM audit_outbox WHERE action LIKE 'incident.%'")).fetchone()
    finally:
        await pool.close()
    assert row == {"status": "open", "acknowledged_at": None} and audited is not None and audited["n"] == 0
