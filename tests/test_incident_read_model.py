"""The incident read model against the real test database: the read-model sink's incident handler
fed the same events twice, and in every order, ends with the same row."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from sinks.contract import Unprocessable
from sinks.read_model import ReadModelSink
from store.db import Pool
from store.flows import FlowView, upsert_flow
from store.incidents import get_incident
from tests.conftest import ProjectKey
from tests.support.api import Api
from topics import INCIDENTS, IncidentEvent, SchemaError, encode, flow_key
from topics.fields import Mode
from topics.messages import FlowStatus, IncidentEventType

pytestmark = pytest.mark.e2e

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE = T0 - timedelta(minutes=1)
OPERATOR = "operator:opr_test"


class Events:
    """Incident events of one flow, as the agents and the gateway publish them."""

    def __init__(self, project_id: str, reference: str):
        self.project_id = project_id
        self.reference = reference
        self.incident_id = f"inc_{reference.replace('-', '')}"
        self.replay_id = f"rpl_{reference.replace('-', '')}"

    def __call__(self, kind: str, minutes: int, *, actor: str = OPERATOR, **fields: Any) -> IncidentEvent:
        return IncidentEvent(
            event_id=f"ive_{kind.replace('_', '')}{minutes}", type=IncidentEventType(kind),
            incident_id=self.incident_id, project_id=self.project_id, reference=self.reference,
            mode=Mode.TEST, actor=actor, occurred_at=T0 + timedelta(minutes=minutes), deadline=DEADLINE,
            **fields,
        )

    def opened(self, minutes: int = 0) -> IncidentEvent:
        return self("opened", minutes, actor="agents", reason="failed_outcome", detail="db locked")

    def resolved(self, minutes: int, resolution: str, note: str | None = None) -> IncidentEvent:
        actor = "agents" if resolution == "outcome_succeeded" else OPERATOR
        return self("resolved", minutes, actor=actor, resolution=resolution, note=note)

    def lifecycle(self) -> list[IncidentEvent]:
        return [
            self.opened(),
            self("acknowledged", 1),
            self("reprocess_requested", 2, replay_id=self.replay_id),
            self.resolved(3, "manual", "refunded by hand"),
        ]


def record(event: IncidentEvent | bytes) -> ConsumerRecord:
    value = event if isinstance(event, bytes) else encode(event)
    key = b"x" if isinstance(event, bytes) else flow_key(event.project_id, event.reference)
    return ConsumerRecord(topic=INCIDENTS.name(), partition=0, offset=0, timestamp=0, timestamp_type=0,
                          key=key, value=value, checksum=None, serialized_key_size=len(key),
                          serialized_value_size=len(value), headers=())


async def feed(sink: ReadModelSink, events: list[IncidentEvent]) -> None:
    """As one fetch brings them to the sink."""
    await sink.handle_incidents([record(event) for event in events])


async def stored(pool: Pool, incident_id: str) -> dict[str, Any]:
    """Every column of the incident and of its replays, but the incident's id and reference."""
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT * FROM incidents WHERE id = %s", (incident_id,))).fetchone()
        replays = await (await conn.execute(
            "SELECT * FROM replays WHERE incident_id = %s ORDER BY replay_id", (incident_id,))).fetchall()
    assert row is not None
    strip = ("id", "reference", "incident_id")
    return {"incident": {k: v for k, v in row.items() if k not in strip},
            "replays": [{k: v for k, v in r.items() if k not in strip} for r in replays]}


async def test_redelivered_events_change_nothing(sink: ReadModelSink, pool: Pool,
                                                 project: ProjectKey) -> None:
    events = Events(project.project_id, "inv-1")
    await feed(sink, events.lifecycle())
    first = await stored(pool, events.incident_id)
    assert first["incident"] == {
        "project_id": project.project_id, "mode": "test", "reason": "failed_outcome", "status": "resolved",
        "opened_at": T0, "deadline": DEADLINE, "acknowledged_at": T0 + timedelta(minutes=1),
        "resolved_at": T0 + timedelta(minutes=3), "resolution": "manual", "note": "refunded by hand",
        "detail": "db locked",
    }
    assert first["replays"] == [{"replay_id": events.replay_id, "requested_by": OPERATOR,
                                 "requested_at": T0 + timedelta(minutes=2), "attempts": 0, "outcome": None}]

    await feed(sink, events.lifecycle() + events.lifecycle()[::-1])
    assert await stored(pool, events.incident_id) == first
    # The agents replaying their stream after a crash: the same events again, stamped later.
    await feed(sink, [events.opened(7), events("acknowledged", 8)])
    assert await stored(pool, events.incident_id) == first


async def test_every_order_of_the_events_gives_the_same_incident(
        sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    async def after(order: tuple[int, ...], reference: str) -> dict[str, Any]:
        events = Events(project.project_id, reference)
        lifecycle = events.lifecycle()
        await feed(sink, [lifecycle[i] for i in order])
        found = await stored(pool, events.incident_id)
        # Replay ids are primary keys, so each flow has its own.
        return {**found, "replays": [{**r, "replay_id": None} for r in found["replays"]]}

    expected = await after((0, 1, 2, 3), "in-order")
    for n, order in enumerate(itertools.permutations(range(4))):
        assert await after(order, f"order-{n}") == expected, order


async def test_resolved_before_opened_does_not_reopen(sink: ReadModelSink, pool: Pool,
                                                      project: ProjectKey) -> None:
    events = Events(project.project_id, "late-open")
    await feed(sink, [events.resolved(5, "outcome_succeeded")])
    async with pool.connection() as conn:
        # Not shown until it has opened: without a reason and an opening time it is no incident yet.
        assert await get_incident(conn, events.incident_id) is None

    await feed(sink, [events.opened()])
    async with pool.connection() as conn:
        incident = await get_incident(conn, events.incident_id)
    assert incident is not None
    assert (incident.status, incident.resolution, incident.reason) == ("resolved", "outcome_succeeded",
                                                                       "failed_outcome")
    assert (incident.opened_at, incident.resolved_at) == (T0, T0 + timedelta(minutes=5))


async def test_a_succeeded_result_outranks_a_manual_resolution_whichever_comes_first(
        sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    results = []
    for name, both in (("manual-first", (0, 1)), ("result-first", (1, 0))):
        events = Events(project.project_id, name)
        resolutions = [events.resolved(3, "manual", "done by hand"), events.resolved(4, "outcome_succeeded")]
        await feed(sink, [events.opened(), *(resolutions[i] for i in both)])
        results.append(await stored(pool, events.incident_id))
    assert results[0] == results[1]
    assert results[0]["incident"]["resolution"] == "outcome_succeeded"
    assert results[0]["incident"]["resolved_at"] == T0 + timedelta(minutes=4)
    # The operator's note stays with the incident.
    assert results[0]["incident"]["note"] == "done by hand"


async def test_a_retried_reprocess_is_one_replay_that_keeps_its_first_time(
        sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    events = Events(project.project_id, "retried")
    first = events("reprocess_requested", 2, replay_id="rpl_same")
    retry = events("reprocess_requested", 3, replay_id="rpl_same")
    other = events("reprocess_requested", 4, replay_id="rpl_other")
    await feed(sink, [events.opened(), retry, other, first, retry])
    replays = (await stored(pool, events.incident_id))["replays"]
    assert [(r["replay_id"], r["requested_at"]) for r in replays] == [
        ("rpl_other", T0 + timedelta(minutes=4)), ("rpl_same", T0 + timedelta(minutes=2))]


async def test_events_it_cannot_use_are_refused_with_a_reason(sink: ReadModelSink,
                                                             project: ProjectKey) -> None:
    with pytest.raises(Unprocessable) as unknown:
        await sink.handle_incidents([record(Events("prj_nosuchproject", "ref").opened())])
    assert unknown.value.reason == "unknown_project"

    events = Events(project.project_id, "incomplete")
    for incomplete in (events("opened", 0), events("resolved", 1), events("reprocess_requested", 1)):
        with pytest.raises(Unprocessable) as refused:
            await sink.handle_incidents([record(incomplete)])
        assert refused.value.reason == "invalid_incident_event"

    with pytest.raises(SchemaError):
        await sink.handle_incidents([record(b'{"schema": "incident.v1"}')])


async def test_a_flow_shows_the_incident_only_once_its_own_state_names_it(
        api: Api, sink: ReadModelSink, pool: Pool, project: ProjectKey) -> None:
    # The read model hears of a flow's status (audit topic) and of its incident (incidents topic)
    # separately; in between, the flow must not show an incident beside a `pending` status.
    events = Events(project.project_id, "inv-between")
    pending = FlowView(project_id=project.project_id, reference="inv-between", mode=Mode.TEST,
                       status=FlowStatus.PENDING, event_type="invoice.paid", effect_type="grant_access",
                       received_at=DEADLINE - timedelta(minutes=30), deadline=DEADLINE, version=1,
                       last_receipt_at=DEADLINE - timedelta(minutes=30))
    async with pool.connection() as conn:
        await upsert_flow(conn, pending)
    await feed(sink, [events.opened()])
    status, flow = await api.flow("inv-between")
    assert status == 200 and flow["status"] == "pending"
    assert "incident" not in flow and "incident_id" not in flow

    async with pool.connection() as conn:
        opened = replace(pending, status=FlowStatus.INCIDENT, incident_id=events.incident_id, version=2)
        await upsert_flow(conn, opened)
    status, flow = await api.flow("inv-between")
    assert (flow["status"], flow["incident_id"]) == ("incident", events.incident_id)
    assert (flow["incident"]["id"], flow["incident"]["status"]) == (events.incident_id, "open")
