"""Flow cycles and mode identity (issue #11) in the read model, the audit checks and the HTTP API,
against the real test database (and a lone gateway for the API): a flow is (project, mode,
reference, cycle); repeated receipts merge monotonically; a forgotten reference's rows go, but
never a cycle started after the forgetting. The agents' side is tested on its own."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest
from aiokafka import ConsumerRecord
from psycopg.rows import dict_row

from harness.db import create_database, drop_database
from harness.kafka import read_topic
from harness.services import Services
from sinks.contract import Unprocessable
from sinks.read_model import ReadModelSink
from store import audit_log
from store.db import Pool, open_pool
from store.flows import get_flow, list_cycles
from store.migrate import available, migrate
from store.projects import update_project
from tests.conftest import ProjectKey
from tests.support.api import Api
from tests.support.cli import clean_env, sendpromptly
from topics import AUDIT, RECEIPTS, AuditEvent, Receipt, decode, encode
from topics.fields import format_timestamp

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REF = "inv_reused"


def flow_event(project_id: str, action: str, *, cycle: int | None = 1, version: int = 1,
               received_at: datetime = T0, receipts: int | None = 1, last_receipt_at: datetime | None = None,
               mode: str = "test", reference: str = REF, incident_id: str | None = None) -> AuditEvent:
    """A flow event as the agents publish it: ``cycle``/``receipts`` None leaves them out, as
    events written before flow cycles did."""
    status = "pending" if action == "flow.receipt_repeated" else action.removeprefix("flow.")
    if action == "flow.receipt_repeated" and version > 1:
        status = "incident"
    data: dict[str, Any] = {
        "reference": reference, "mode": mode, "status": status, "event_type": "invoice.paid",
        "effect_type": "grant_access", "received_at": format_timestamp(received_at),
        "deadline": format_timestamp(received_at + timedelta(minutes=30)),
        "applied_at": format_timestamp(received_at + timedelta(minutes=1)) if status == "applied" else None,
        "incident_id": incident_id, "detail": None, "version": version,
    }
    if cycle is not None:
        data["cycle"] = cycle
    if receipts is not None:
        data["receipts"] = receipts
        data["last_receipt_at"] = format_timestamp(last_receipt_at or received_at)
    names = (action, mode, str(cycle), str(version), str(receipts), format_timestamp(received_at))
    return AuditEvent(event_id="aud_" + uuid.uuid5(uuid.NAMESPACE_URL, ":".join(names)).hex,
                      project_id=project_id, actor="agents", action=action, target=reference,
                      occurred_at=received_at, data=data)


def forgotten(project_id: str, cycle: int, received_at: datetime, mode: str = "test") -> AuditEvent:
    return AuditEvent(event_id=f"aud_forget{cycle}{received_at.timestamp():.0f}", project_id=project_id,
                      actor="agents", action="flow.forgotten", target=REF,
                      occurred_at=T0 + timedelta(days=40),
                      data={"reference": REF, "mode": mode, "cycle": cycle,
                            "received_at": format_timestamp(received_at)})


def record(event: AuditEvent) -> ConsumerRecord:
    value = encode(event)
    key = event.project_id.encode() if event.project_id else b""
    return ConsumerRecord(topic=AUDIT.name(), partition=0, offset=0, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key),
                          serialized_value_size=len(value), headers=())


async def feed(sink: ReadModelSink, *events: AuditEvent) -> None:
    """As one fetch brings them to the sink."""
    await sink.handle_audit([record(event) for event in events])


async def rows(pool: Pool, project_id: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        return await (await conn.execute(
            "SELECT mode, cycle, status, version, receipts, last_receipt_at, received_at FROM flows"
            " WHERE project_id = %s ORDER BY mode, cycle", (project_id,))).fetchall()


# --- the read model -------------------------------------------------------------------------------

async def test_each_cycle_and_each_mode_is_a_flow_of_its_own(sink: ReadModelSink, pool: Pool,
                                                              project: ProjectKey) -> None:
    later = T0 + timedelta(hours=1)
    await feed(sink,
               flow_event(project.project_id, "flow.pending"),
               flow_event(project.project_id, "flow.applied", version=2),
               flow_event(project.project_id, "flow.pending", cycle=2, received_at=later),
               flow_event(project.project_id, "flow.pending", mode="live", received_at=later))
    assert [(r["mode"], r["cycle"], r["status"]) for r in await rows(pool, project.project_id)] == [
        ("live", 1, "pending"), ("test", 1, "applied"), ("test", 2, "pending")]

    async with pool.connection() as conn:
        latest = await get_flow(conn, project.project_id, REF, mode="test")
        first = await get_flow(conn, project.project_id, REF, mode="test", cycle=1)
        live = await get_flow(conn, project.project_id, REF, mode="live")
        missing = await get_flow(conn, project.project_id, REF, mode="test", cycle=3)
        cycles = await list_cycles(conn, project.project_id, "test", REF, limit=20)
        newest = await list_cycles(conn, project.project_id, "test", REF, limit=1)
    assert latest is not None and (latest.cycle, latest.status, latest.received_at) == (2, "pending", later)
    assert first is not None and (first.cycle, first.status) == (1, "applied")
    assert live is not None and (live.mode, live.cycle) == ("live", 1)
    assert missing is None
    assert [(c.cycle, c.status) for c in cycles] == [(2, "pending"), (1, "applied")]
    assert [c.cycle for c in newest] == [2]


async def test_repeated_receipts_merge_the_same_in_any_order_and_redelivered(
        sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    events = [
        flow_event(project.project_id, "flow.pending"),
        flow_event(project.project_id, "flow.receipt_repeated", receipts=2, last_receipt_at=at(1)),
        flow_event(project.project_id, "flow.receipt_repeated", receipts=3, last_receipt_at=at(2)),
        flow_event(project.project_id, "flow.incident", version=2, receipts=3, last_receipt_at=at(2),
                   incident_id="inc_1"),
        flow_event(project.project_id, "flow.receipt_repeated", version=2, receipts=4, last_receipt_at=at(3),
                   incident_id="inc_1"),
    ]
    finals = set()
    for order in itertools.permutations(events):
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM flows WHERE project_id = %s", (project.project_id,))
        await feed(sink, *order, *order)  # and each one redelivered
        (row,) = await rows(pool, project.project_id)
        finals.add(tuple(row.items()))
    (final,) = finals
    assert dict(final) | {"received_at": None} == {
        "mode": "test", "cycle": 1, "status": "incident", "version": 2, "receipts": 4,
        "last_receipt_at": at(3), "received_at": None}


async def test_a_repeat_of_a_flow_not_yet_stored_makes_its_row(sink: ReadModelSink, pool: Pool,
                                                               project: ProjectKey) -> None:
    await feed(sink, flow_event(project.project_id, "flow.receipt_repeated", receipts=2,
                                last_receipt_at=T0 + timedelta(seconds=5)))
    (row,) = await rows(pool, project.project_id)
    assert (row["status"], row["receipts"]) == ("pending", 2)
    assert row["last_receipt_at"] == T0 + timedelta(seconds=5)


async def test_events_from_before_flow_cycles_are_cycle_1_with_one_receipt(
        sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    await feed(sink, flow_event(project.project_id, "flow.pending", cycle=None, receipts=None))
    (row,) = await rows(pool, project.project_id)
    assert (row["cycle"], row["receipts"], row["last_receipt_at"]) == (1, 1, T0)


async def test_a_forget_deletes_the_forgotten_cycles_but_never_a_later_cycle_1(
        sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    second, again = T0 + timedelta(hours=1), T0 + timedelta(days=40)
    await feed(sink,
               flow_event(project.project_id, "flow.pending"),
               flow_event(project.project_id, "flow.applied", version=2),
               flow_event(project.project_id, "flow.pending", cycle=2, received_at=second),
               flow_event(project.project_id, "flow.applied", cycle=2, version=2, received_at=second),
               flow_event(project.project_id, "flow.pending", mode="live"))
    await feed(sink, forgotten(project.project_id, 2, second))
    assert [(r["mode"], r["cycle"]) for r in await rows(pool, project.project_id)] == [("live", 1)]

    # The reference used again after the forgetting: cycle 1 once more, received later.
    restarted = flow_event(project.project_id, "flow.pending", received_at=again)
    await feed(sink, restarted)
    # A late or replayed forget, and a replayed transition of a forgotten cycle, change nothing.
    await feed(sink, forgotten(project.project_id, 2, second), forgotten(project.project_id, 1, T0),
               flow_event(project.project_id, "flow.applied", version=2))
    left = await rows(pool, project.project_id)
    assert [(r["mode"], r["cycle"], r["status"], r["received_at"]) for r in left] == [
        ("live", 1, "pending", T0), ("test", 1, "pending", again)]

    # Incidents stay (operators' history); only flows rows go.
    await feed(sink, forgotten(project.project_id, 1, again))
    assert [(r["mode"], r["cycle"]) for r in await rows(pool, project.project_id)] == [("live", 1)]


async def test_a_fetch_merged_at_once_leaves_the_rows_as_its_events_one_by_one(
        sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    # The sink writes a fetch's flows in one statement, a cycle's events merged before: in any
    # order, with a forgotten cycle, a replayed event of it and the cycle 1 started after it.
    again = T0 + timedelta(days=40)
    events = [flow_event(project.project_id, "flow.pending"),
              flow_event(project.project_id, "flow.applied", version=2),
              flow_event(project.project_id, "flow.receipt_repeated", receipts=2,
                         last_receipt_at=T0 + timedelta(minutes=1)),
              forgotten(project.project_id, 1, T0),
              flow_event(project.project_id, "flow.pending", received_at=again)]
    for order in itertools.permutations(events):
        ends = []
        for fetches in ([order], [(event,) for event in order]):
            async with pool.connection() as conn:
                await conn.execute("DELETE FROM flows WHERE project_id = %s", (project.project_id,))
            for fetch in fetches:
                await feed(sink, *fetch)
            ends.append(await rows(pool, project.project_id))
        assert ends[0] == ends[1], [event.action for event in order]


@pytest.mark.parametrize("data", [
    {"reference": REF, "mode": "test", "received_at": "2026-01-01T12:00:00.000Z"},  # no cycle
    {"reference": REF, "mode": "test", "cycle": 0, "received_at": "2026-01-01T12:00:00.000Z"},
    {"reference": REF, "mode": "test", "cycle": 1, "received_at": "yesterday"},
])
async def test_a_forget_it_cannot_read_is_refused(sink: ReadModelSink, project: ProjectKey,
                                                  data: dict[str, Any]) -> None:
    event = AuditEvent(event_id="aud_x", project_id=project.project_id, actor="agents",
                       action="flow.forgotten", target=REF, occurred_at=T0, data=data)
    with pytest.raises(Unprocessable) as refused:
        await sink.handle_audit([record(event)])
    assert refused.value.reason == "invalid_flow_data"


async def test_verify_complete_checks_each_cycle_on_its_own(sink: ReadModelSink, pool: Pool,
                                                           project: ProjectKey) -> None:
    second = T0 + timedelta(hours=1)
    # Cycle 1 complete; cycle 2's version 1 lost, its repeat (version 1 too) must not hide that.
    events = [flow_event(project.project_id, "flow.pending", cycle=None, receipts=None),
              flow_event(project.project_id, "flow.applied", version=2),
              flow_event(project.project_id, "flow.receipt_repeated", cycle=2, receipts=2,
                         received_at=second),
              flow_event(project.project_id, "flow.applied", cycle=2, version=2, received_at=second),
              flow_event(project.project_id, "flow.pending", mode="live", received_at=second)]
    await feed(sink, *events)
    async with pool.connection() as conn:
        for event in events:
            await audit_log.append(conn, event)
        gaps = await audit_log.flows_missing_transitions(conn, project.project_id)
    assert [(g.mode, g.reference, g.cycle, g.version, g.missing) for g in gaps] == [("test", REF, 2, 2, (1,))]


async def test_a_cycles_timeline_is_its_own_events_and_its_incidents(sink: ReadModelSink, pool: Pool,
                                                                     project: ProjectKey) -> None:
    second = T0 + timedelta(hours=1)
    events = [flow_event(project.project_id, "flow.pending"),
              flow_event(project.project_id, "flow.incident", version=2, incident_id="inc_a"),
              flow_event(project.project_id, "flow.pending", cycle=2, received_at=second),
              flow_event(project.project_id, "flow.receipt_repeated", cycle=2, receipts=2,
                         received_at=second),
              flow_event(project.project_id, "flow.pending", mode="live", received_at=second),
              AuditEvent(event_id="aud_ack", project_id=project.project_id, actor="operator:opr_x",
                         action="incident.acknowledged", target="inc_a", occurred_at=second,
                         data={"reference": REF})]
    await feed(sink, *events)
    async with pool.connection() as conn:
        for event in events:
            await audit_log.append(conn, event)
        chain = audit_log.chain_of(project.project_id)
        first = await get_flow(conn, project.project_id, REF, mode="test", cycle=1)
        latest = await get_flow(conn, project.project_id, REF, mode="test")
        assert first is not None and latest is not None
        one = await audit_log.list_for_flow(conn, chain, first, limit=100)
        two = await audit_log.list_for_flow(conn, chain, latest, limit=100)
    assert [r.action for r in one] == ["flow.pending", "flow.incident", "incident.acknowledged"]
    assert [(r.action, r.data["cycle"]) for r in two] == [("flow.pending", 2), ("flow.receipt_repeated", 2)]


def test_migration_0012_makes_every_stored_flow_cycle_1_of_its_mode(services: Services) -> None:
    name = f"sp_test_{uuid.uuid4().hex[:12]}"
    url = create_database(services.admin_database_url, name)
    try:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())")
            for migration in available():
                if migration.version < 12:
                    conn.execute(migration.sql)
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                 (migration.version, migration.name))
            conn.execute("INSERT INTO projects (id, name) VALUES ('prj_old', 'old')")
            conn.execute("INSERT INTO flows (project_id, reference, mode, status, event_type, effect_type,"
                         " received_at, deadline, version) VALUES ('prj_old', 'inv_1', 'test', 'applied',"
                         " 'invoice.paid', 'grant_access', %s, %s, 2)", (T0, T0 + timedelta(minutes=30)))
        assert migrate(url)[0] == "0012_flow_cycles.sql"
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            row = conn.execute("SELECT cycle, receipts, last_receipt_at, version FROM flows").fetchone()
            assert row == {"cycle": 1, "receipts": 1, "last_receipt_at": T0, "version": 2}
            key = conn.execute("SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint"
                               " WHERE conrelid = 'flows'::regclass AND contype = 'p'").fetchone()
            assert key == {"d": "PRIMARY KEY (project_id, mode, reference, cycle)"}
    finally:
        drop_database(services.admin_database_url, name)


# --- the HTTP API (a lone gateway: the read model is written here, as the sink would) ------------

@pytest.fixture
def api(http: aiohttp.ClientSession, gateway_url: str, project: ProjectKey) -> Api:
    return Api(http, gateway_url, project.api_key)


@pytest.fixture
def operator(http: aiohttp.ClientSession, gateway_url: str, admin_token: str) -> Api:
    return Api(http, gateway_url, admin_token)


async def test_the_202_states_what_was_received_never_a_deadline_or_state(api: Api,
                                                                          project: ProjectKey) -> None:
    status, receipt = await api.receipt("inv/1 é", timeout_seconds=90)
    assert status == 202
    assert set(receipt) == {"project_id", "reference", "mode", "kind", "status", "received_at",
                            "timeout_seconds", "flow_url"}
    assert {k: v for k, v in receipt.items() if k not in ("received_at", "flow_url")} == {
        "project_id": project.project_id, "reference": "inv/1 é", "mode": "test", "kind": "receipt",
        "status": "accepted", "timeout_seconds": 90}
    assert receipt["flow_url"] == "/api/v1/flows/inv%2F1%20%C3%A9?mode=test"
    # Without a timeout of its own, the project's (30 minutes) is the one it carries.
    assert (await api.receipt("inv_2"))[1]["timeout_seconds"] == 30 * 60

    status, result = await api.result("inv_2", "failed", detail="db locked")
    assert status == 202
    assert set(result) == {"project_id", "reference", "mode", "kind", "status", "received_at", "result",
                           "flow_url"}
    assert (result["kind"], result["status"], result["result"]) == ("result", "accepted", "failed")
    assert result["flow_url"] == "/api/v1/flows/inv_2?mode=test"

    # The stored answer is replayed as is.
    first = await api.send("POST", "/api/v1/receipt", {"reference": "inv_3", "event_type": "invoice.paid",
                                                       "effect_type": "grant_access"}, idempotency_key="k3")
    await asyncio.sleep(0.01)
    again = await api.send("POST", "/api/v1/receipt", {"reference": "inv_3", "event_type": "invoice.paid",
                                                       "effect_type": "grant_access"}, idempotency_key="k3")
    assert (again[0], again[1], again[2]["Idempotent-Replayed"]) == (202, first[1], "true")


async def test_one_idempotency_key_in_test_then_in_live_publishes_twice(
        api: Api, project: ProjectKey, database_url: str, services: Services, topic_prefix: str,
        gateway_url: str) -> None:
    body = {"reference": "inv_both", "event_type": "invoice.paid", "effect_type": "grant_access"}
    in_test = await api.send("POST", "/api/v1/receipt", body, idempotency_key="same-key")
    # Going live through the API needs a callback, a live key and a destination; the database
    # switch is enough for the gateway (which sees it once its 2 s key cache has expired).
    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        await update_project(conn, project.project_id, {"mode": "live"})
    await pool.close()
    await asyncio.sleep(2.5)
    in_live = await api.send("POST", "/api/v1/receipt", body, idempotency_key="same-key")
    replayed = await api.send("POST", "/api/v1/receipt", body, idempotency_key="same-key")

    assert (in_test[0], in_test[1]["mode"]) == (202, "test") and "Idempotent-Replayed" not in in_test[2]
    assert (in_live[0], in_live[1]["mode"]) == (202, "live") and "Idempotent-Replayed" not in in_live[2]
    assert replayed[1] == in_live[1] and replayed[2]["Idempotent-Replayed"] == "true"
    published = [decode(Receipt, v) for _, v in await read_topic(services.kafka_bootstrap,
                                                                   RECEIPTS.name(topic_prefix))]
    assert [(r.idempotency_key, r.mode) for r in published] == [("same-key", "test"), ("same-key", "live")]

    async with api.session.get(gateway_url + "/metrics") as response:
        metrics = await response.text()
    assert 'sendpromptly_idempotent_replays_total{scope_kind="prj"} 1.0' in metrics


async def test_a_flow_lookup_takes_mode_and_cycle_and_lists_the_cycles(
        api: Api, operator: Api, sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    second = T0 + timedelta(hours=1)
    events = [flow_event(project.project_id, "flow.pending"),
              flow_event(project.project_id, "flow.applied", version=2),
              flow_event(project.project_id, "flow.pending", cycle=2, received_at=second),
              flow_event(project.project_id, "flow.receipt_repeated", cycle=2, receipts=2, received_at=second,
                         last_receipt_at=second + timedelta(seconds=5)),
              flow_event(project.project_id, "flow.pending", mode="live", received_at=second)]
    await feed(sink, *events)
    async with pool.connection() as conn:
        for event in events:
            await audit_log.append(conn, event)

    status, latest = await api.flow(REF)  # the project's mode (test), the latest cycle
    assert status == 200
    assert {k: latest[k] for k in ("mode", "cycle", "status", "receipts", "last_receipt_at")} == {
        "mode": "test", "cycle": 2, "status": "pending", "receipts": 2,
        "last_receipt_at": format_timestamp(second + timedelta(seconds=5))}
    assert [(c["cycle"], c["status"], c["received_at"]) for c in latest["cycles"]] == [
        (2, "pending", format_timestamp(second)), (1, "applied", format_timestamp(T0))]

    status, first = await api.get(f"/api/v1/flows/{REF}?cycle=1")
    assert (status, first["cycle"], first["status"], first["receipts"]) == (200, 1, "applied", 1)
    assert first["cycles"] == latest["cycles"]
    status, live = await api.get(f"/api/v1/flows/{REF}?mode=live")
    assert (status, live["mode"], live["cycle"]) == (200, "live", 1)
    assert [c["cycle"] for c in live["cycles"]] == [1]
    status, problem = await api.get(f"/api/v1/flows/{REF}?mode=live&cycle=2")
    assert status == 404 and "cycle 2" in problem["detail"] and "live mode" in problem["detail"]

    path = f"/api/v1/projects/{project.project_id}/flows/{REF}"
    status, seen = await operator.get(path + "?cycle=1")
    assert status == 200 and {k: v for k, v in seen.items() if k != "timeline"} == first
    assert [(e["action"], e["status"]) for e in seen["timeline"]] == [("flow.pending", "pending"),
                                                                      ("flow.applied", "applied")]
    status, seen = await operator.get(path)
    assert [(e["action"], e.get("status"), e.get("receipts")) for e in seen["timeline"]] == [
        ("flow.pending", "pending", None), ("flow.receipt_repeated", None, 2)]

    # The CLI: the same lookups, and the cycles as lines.
    env = clean_env(SENDPROMPTLY_URL=operator.base_url, SENDPROMPTLY_OPERATOR_TOKEN=operator.token)
    shown = sendpromptly("flows", "show", project.project_id, REF, env=env)
    assert shown.code == 0, shown.err
    assert re.search(r"^cycle\s+2$", shown.out, re.MULTILINE)
    assert re.search(r"^receipts\s+2$", shown.out, re.MULTILINE)
    assert re.search(rf"^cycles\s+1: applied, received {format_timestamp(T0)}, ", shown.out, re.MULTILINE)
    assert "flow.receipt_repeated receipt 2, received " in shown.out
    as_json = sendpromptly("flows", "show", project.project_id, REF, "--cycle", "1", "--json", env=env)
    assert as_json.code == 0 and as_json.json() == {**first, "timeline": as_json.json()["timeline"]}
    live_json = sendpromptly("flows", "show", project.project_id, REF, "--mode", "live", "--json", env=env)
    assert (live_json.json()["mode"], live_json.json()["cycle"]) == ("live", 1)


@pytest.mark.parametrize(("query", "status", "slug", "field"), [
    ("?mode=tset", 400, "invalid-query-parameter", "mode"),
    ("?cycle=0", 400, "invalid-query-parameter", "cycle"),
    ("?cycle=%C2%B2", 400, "invalid-query-parameter", "cycle"),
    ("?cycle=1&cycle=2", 400, "invalid-query-parameter", "cycle"),
    ("?cylce=1", 400, "unknown-query-parameter", "cylce"),
    ("?limit=5", 400, "unknown-query-parameter", "limit"),
])
async def test_a_flow_lookup_refuses_a_query_it_does_not_take(api: Api, operator: Api, project: ProjectKey,
                                                               query: str, status: int, slug: str,
                                                               field: str) -> None:
    for client, path in ((api, f"/api/v1/flows/{REF}"),
                         (operator, f"/api/v1/projects/{project.project_id}/flows/{REF}")):
        got, problem = await client.get(path + query)
        assert (got, problem["type"].rsplit("/", 1)[-1]) == (status, slug), (path, problem)
        assert [e["field"] for e in problem["errors"]] == [field]
