"""Delivery state in PostgreSQL: a redelivered repair request makes no second delivery, a claimed
delivery is leased away from other replicas, an attempt is recorded before it is made and one left
without outcome is taken for interrupted once its lease runs out, and only the replay's own flow
sets its outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from common.callback_request import Outcome
from store.callback_deliveries import (
    INTERRUPTED,
    DeliveryStatus,
    begin_attempt,
    claim_due,
    finish_attempt,
    list_attempts,
    record_delivery,
)
from store.db import Connection, open_pool
from store.incidents import (
    Incident,
    ReplayOutcome,
    add_replay,
    apply_event,
    get_incident,
    record_replay_outcome,
)
from tests.conftest import ProjectKey
from topics import IncidentEvent, RepairRequest
from topics.fields import Mode
from topics.messages import IncidentEventType, IncidentReason

# Milliseconds, as the wire form keeps them.
NOW = datetime.now(UTC).replace(microsecond=123_000)


def _opened(project: ProjectKey, n: str) -> IncidentEvent:
    """The agents' ``opened`` event of incident ``inc_<n>`` on flow ``inv_<n>``."""
    return IncidentEvent(event_id=f"ive_{n}", type=IncidentEventType.OPENED, incident_id=f"inc_{n}",
                         project_id=project.project_id, reference=f"inv_{n}", mode=Mode.TEST, actor="agents",
                         occurred_at=NOW, reason=IncidentReason.TIMEOUT, deadline=NOW)



def _repair(project: ProjectKey, n: str) -> RepairRequest:
    return RepairRequest(replay_id=f"rpl_{n}", incident_id=f"inc_{n}", project_id=project.project_id,
                         reference=f"inv_{n}", mode=Mode.TEST, event_type="invoice.paid",
                         effect_type="grant_access", requested_by="operator:opr_1", requested_at=NOW)


async def incident(conn: Connection, incident_id: str) -> Incident:
    found = await get_incident(conn, incident_id)
    assert found is not None, f"no incident {incident_id}"
    return found

async def test_deliveries_are_recorded_once_and_claimed_once(database_url: str, project: ProjectKey) -> None:
    opened = _opened(project, "1")
    repair = _repair(project, "1")
    pool = await open_pool(database_url, max_size=2)
    try:
        async with pool.connection() as conn:
            await apply_event(conn, opened)
            await add_replay(conn, "rpl_1", "inc_1", "operator:opr_1", NOW)
            assert await record_delivery(conn, repair) is True
            assert await record_delivery(conn, repair) is False  # Kafka redelivered it

        async with pool.connection() as one, pool.connection() as other:
            (claimed,) = await claim_due(one, limit=10, lease=timedelta(seconds=60))
            assert (claimed.replay_id, claimed.request, claimed.attempts) == ("rpl_1", repair, 0)
            assert await claim_due(other, limit=10, lease=timedelta(seconds=60)) == []  # leased

            # Another project's result naming this replay changes nothing; the flow's own does.
            await record_replay_outcome(one, "prj_other", "inv_1", "rpl_1", ReplayOutcome.SUCCEEDED)
            assert (await incident(one, "inc_1")).replays[0].outcome is None
            await record_replay_outcome(one, project.project_id, "inv_1", "rpl_1", ReplayOutcome.SUCCEEDED)
            await record_replay_outcome(one, project.project_id, "inv_1", "rpl_1", ReplayOutcome.FAILED)
            assert (await incident(one, "inc_1")).replays[0].outcome is ReplayOutcome.SUCCEEDED
    finally:
        await pool.close()


async def test_a_locked_incident_does_not_deadlock_the_sink_writing_its_replay(
        database_url: str, project: ProjectKey) -> None:
    """The reprocess interleaving: the gateway holds the incident's lock while Kafka takes the repair
    request, the callbacks sink writes the replay row, then the gateway writes the same row."""
    opened = _opened(project, "2")
    pool = await open_pool(database_url, max_size=2)
    try:
        async with pool.connection() as conn:
            await apply_event(conn, opened)
        async with pool.connection() as gateway, pool.connection() as sink:
            async with gateway.transaction():
                assert await get_incident(gateway, "inc_2", lock=True) is not None
                async with sink.transaction():
                    await asyncio.wait_for(add_replay(sink, "rpl_2", "inc_2", "operator:opr_1", NOW), 5)
                    gateway_insert = asyncio.create_task(
                        add_replay(gateway, "rpl_2", "inc_2", "operator:opr_1", NOW))
                    await asyncio.sleep(0.2)  # the gateway's insert now waits on the sink's row
                await asyncio.wait_for(gateway_insert, 5)
            assert [r.replay_id for r in (await incident(gateway, "inc_2")).replays] == ["rpl_2"]
    finally:
        await pool.close()


async def test_an_attempt_left_without_outcome_is_interrupted_once_its_lease_runs_out(
        database_url: str, project: ProjectKey) -> None:
    """The sink killed after sending attempt 1 (or the database away as it records the answer): the
    next claim says so, the interruption is recorded as its outcome, and the late answer of the
    first process then changes nothing."""
    pool = await open_pool(database_url, max_size=1)
    no_lease, lease = timedelta(0), timedelta(seconds=60)
    try:
        async with pool.connection() as conn:
            await apply_event(conn, _opened(project, "3"))
            await add_replay(conn, "rpl_3", "inc_3", "operator:opr_1", NOW)
            await record_delivery(conn, _repair(project, "3"))
            (claimed,) = await claim_due(conn, limit=10, lease=no_lease)
            assert (claimed.attempts, claimed.interrupted) == (0, False)
            assert await begin_attempt(conn, "rpl_3", 1, "nonce-1", NOW) is True
            assert await begin_attempt(conn, "rpl_3", 1, "nonce-x", NOW) is False  # another replica
            (under_way,) = await list_attempts(conn, ["rpl_3"])
            assert (under_way.number, under_way.nonce, under_way.outcome) == (1, "nonce-1", None)

            (claimed,) = await claim_due(conn, limit=10, lease=lease)  # the lease has run out
            assert (claimed.attempts, claimed.interrupted) == (1, True)
            async with conn.transaction():
                assert await finish_attempt(conn, "rpl_3", 1, INTERRUPTED, status=DeliveryStatus.PENDING,
                                            next_attempt_at=NOW) is True
            async with conn.transaction():
                answer = Outcome(http_status=200, latency_ms=12, error=None)
                assert await finish_attempt(conn, "rpl_3", 1, answer, status=DeliveryStatus.PENDING,
                                            next_attempt_at=NOW) is False

            (claimed,) = await claim_due(conn, limit=10, lease=lease)  # the retry, due at NOW
            assert (claimed.attempts, claimed.interrupted) == (1, False)
            assert await begin_attempt(conn, "rpl_3", 2, "nonce-2", NOW) is True
            first, second = await list_attempts(conn, ["rpl_3"])
            assert first.outcome == INTERRUPTED and first.finished_at is not None
            assert (second.number, second.nonce, second.outcome) == (2, "nonce-2", None)
    finally:
        await pool.close()
