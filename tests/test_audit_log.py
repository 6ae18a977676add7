"""The audit log on the real stack: operator actions and flow transitions land in
``audit_log`` once each, hash-chained per project; the database refuses UPDATE and DELETE; and
``sendpromptly audit verify`` finds a tampered row."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import psycopg
import pytest
from aiokafka import ConsumerRecord

from harness.kafka import read_topic
from harness.services import Services
from harness.stack import Stack
from sinks.audit_log import AuditLogSink
from sinks.contract import Unprocessable
from store import audit_log
from store.audit_log import GENESIS
from store.db import Pool
from store.projects import create_project
from tests.conftest import ProjectKey
from tests.support.api import Api, eventually
from topics import AUDIT, AuditEvent, decode, encode

pytestmark = pytest.mark.e2e


async def rows_of(database_url: str, chain: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return await (await conn.execute(
            "SELECT seq, event_id, actor, action, target, prev_hash, hash FROM audit_log WHERE chain = %s"
            " ORDER BY seq", (chain,))).fetchall()


async def project_with_flows(operator_api: Api, stack: Stack) -> tuple[str, Api]:
    """A project made through the operator API, with one applied flow and one in incident."""
    status, project, _ = await operator_api.send("POST", "/api/v1/projects", {"name": "Audited"})
    assert status == 201
    status, key, _ = await operator_api.send("POST", f"/api/v1/projects/{project['id']}/keys", {"label": "k"})
    assert status == 201
    api = Api(operator_api.session, stack.base_url, key["key"])
    for reference, outcome in (("inv_ok", "succeeded"), ("inv_bad", "failed")):
        assert (await api.receipt(reference))[0] == 202
        assert (await api.result(reference, outcome))[0] == 202
    return project["id"], api


def verify(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sendpromptly", "audit", "verify", *args],
                          env={"SENDPROMPTLY_DATABASE_URL": database_url, "PATH": ""},
                          capture_output=True, text=True, timeout=60)


async def test_operator_actions_and_flow_transitions_are_appended_once_each_and_chained(
        operator_api: Api, stack: Stack, services: Services, topic_prefix: str, database_url: str) -> None:
    project_id, _ = await project_with_flows(operator_api, stack)
    expected = {"project.created", "api_key.created", "flow.pending", "flow.applied", "flow.incident"}
    rows = await eventually(lambda: rows_of(database_url, project_id),
                            lambda found: expected <= {r["action"] for r in found} and len(found) >= 6)

    published = [decode(AuditEvent, value) for _, value in await read_topic(services.kafka_bootstrap,
                                                                            AUDIT.name(topic_prefix))]
    ours = [event.event_id for event in published if event.project_id == project_id]
    # Once each, in topic order (a redelivered event would be on the topic twice, in the log once).
    assert [r["event_id"] for r in rows] == list(dict.fromkeys(ours))
    # The gateway's relay and the agents publish independently: only each source's own order holds.
    assert [r["action"] for r in rows if r["actor"] != "agents"] == ["project.created", "api_key.created"]
    assert sorted(r["action"] for r in rows if r["actor"] == "agents") == [
        "flow.applied", "flow.incident", "flow.pending", "flow.pending"]
    assert rows[0]["prev_hash"] == GENESIS
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(rows))

    status, page = await operator_api.get(f"/api/v1/projects/{project_id}/audit-log?limit=200")
    assert status == 200
    assert [(e["id"], e["hash"], e["prev_hash"]) for e in page["items"]] == [
        (r["event_id"], r["hash"], r["prev_hash"]) for r in reversed(rows)]


async def test_the_database_refuses_update_and_delete_and_verify_finds_tampering(
        operator_api: Api, stack: Stack, database_url: str) -> None:
    project_id, _ = await project_with_flows(operator_api, stack)
    rows = await eventually(lambda: rows_of(database_url, project_id), lambda found: len(found) >= 6)
    victim = rows[2]

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for statement in ("UPDATE audit_log SET target = 'x' WHERE seq = %s",
                          "DELETE FROM audit_log WHERE seq = %s"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                await conn.execute(statement, (victim["seq"],))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("TRUNCATE audit_log")

    passed = verify(database_url, "--project", project_id)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"ok      {project_id}" in passed.stdout

    async def set_target(value: str) -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            await conn.execute("UPDATE audit_log SET target = %s WHERE seq = %s", (value, victim["seq"]))
            await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")

    await set_target("tampered")
    failed = verify(database_url)
    assert failed.returncode == 1
    assert f"BROKEN  {project_id}: entry seq {victim['seq']} ({victim['event_id']})" in failed.stdout

    await set_target(victim["target"])
    assert verify(database_url).returncode == 0


async def test_verify_complete_names_a_flow_whose_transition_is_missing(
        operator_api: Api, stack: Stack, database_url: str) -> None:
    project_id, api = await project_with_flows(operator_api, stack)
    await eventually(lambda: api.flow("inv_ok"), lambda answer: answer[1].get("status") == "applied")
    await eventually(lambda: api.flow("inv_bad"), lambda answer: answer[1].get("status") == "incident")
    await eventually(lambda: rows_of(database_url, project_id), lambda found: len(found) >= 6)
    complete = verify(database_url, "--project", project_id, "--complete")
    assert complete.returncode == 0, complete.stdout + complete.stderr
    assert "every flow's transitions complete" in complete.stdout

    # A transition lost on its way (what a crash between state and outputs used to cause).
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute("DELETE FROM audit_log WHERE chain = %s AND action = 'flow.pending'"
                           " AND target = 'inv_bad'", (project_id,))
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    failed = verify(database_url, "--project", project_id, "--complete")
    assert failed.returncode == 1
    assert (f"MISSING {project_id}: flow 'inv_bad' (test, cycle 1, version 2) lacks transition(s) 1"
            in failed.stdout)


async def test_kill_9_of_the_audit_sink_mid_stream_loses_and_doubles_no_row(
        operator_api: Api, stack: Stack, services: Services, topic_prefix: str, database_url: str) -> None:
    project_id, api = await project_with_flows(operator_api, stack)
    audit_sink = stack.sinks["audit"]
    for n in range(40):  # a stream of flow transitions to be in the middle of
        assert (await api.receipt(f"inv_burst_{n}"))[0] == 202
        if n == 20:
            audit_sink.kill()
    audit_sink.start()
    audit_sink.wait_ready(stack.sink_urls["audit"] + "/readyz")

    async def published_for_project() -> list[str]:
        events = await read_topic(services.kafka_bootstrap, AUDIT.name(topic_prefix))
        return [e.event_id for e in map(lambda v: decode(AuditEvent, v[1]), events)
                if e.project_id == project_id]

    # project.created, api_key.created, 4 transitions of the two first flows, 40 flows pending.
    ours = await eventually(published_for_project, lambda found: len(set(found)) >= 46, timeout=60)
    rows = await eventually(lambda: rows_of(database_url, project_id),
                            lambda found: len(found) >= len(set(ours)), timeout=60)
    await asyncio.sleep(2)  # room for a doubled append to show up
    rows = await rows_of(database_url, project_id)
    assert sorted(r["event_id"] for r in rows) == sorted(set(ours)), "each event once, none missing"
    done = verify(database_url, "--project", project_id)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_a_fetch_appends_in_order_once_each_to_its_chains(pool: Pool, project: ProjectKey,
                                                                 database_url: str) -> None:
    # The sink appends what one fetch brought at once: two projects' chains, an event already
    # appended, one twice in the fetch, and a system event (no project).
    async with pool.connection() as conn:
        other = (await create_project(conn, name="other")).id

    def event(n: int, project_id: str | None) -> AuditEvent:
        return AuditEvent(event_id=f"aud_{n}_{uuid.uuid4().hex[:6]}", project_id=project_id, actor="agents",
                          action="flow.pending", target=f"inv_{n}", occurred_at=datetime.now(UTC),
                          data={"n": n})

    first, *rest = [event(n, project.project_id) for n in range(4)]
    theirs, system = event(10, other), event(20, None)
    async with pool.connection() as conn:
        assert await audit_log.append(conn, first)
        assert await audit_log.append_many(
            conn, [first, rest[0], theirs, rest[1], rest[0], system, rest[2]]) == 5
        assert not await audit_log.append(conn, rest[2])
        checked = {chain: await audit_log.verify_chain(conn, chain)
                   for chain in (project.project_id, other, audit_log.SYSTEM_CHAIN)}
    assert checked == {project.project_id: (4, None), other: (1, None), audit_log.SYSTEM_CHAIN: (1, None)}
    ours = await rows_of(database_url, project.project_id)
    assert [r["event_id"] for r in ours] == [e.event_id for e in (first, *rest)]


async def test_an_event_the_log_can_never_hold_is_refused_with_a_reason(pool: Pool,
                                                                       project: ProjectKey) -> None:
    # jsonb holds no NUL character: storing the event fails the same way every time.
    event = AuditEvent(event_id=f"aud_nul_{uuid.uuid4().hex[:6]}", project_id=project.project_id,
                       actor="agents", action="flow.pending", target="inv_nul", occurred_at=datetime.now(UTC),
                       data={"note": "a\x00b"})
    value = encode(event)
    record = ConsumerRecord(topic=AUDIT.name(), partition=0, offset=0, timestamp=0, timestamp_type=0,
                            key=b"k", value=value, checksum=None, serialized_key_size=1,
                            serialized_value_size=len(value), headers=())
    with pytest.raises(Unprocessable) as refused:
        await AuditLogSink(pool).handle([record])
    assert refused.value.reason == "unstorable_audit_event"
