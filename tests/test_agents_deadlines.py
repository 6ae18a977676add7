"""Deadlines on wall-clock time, and state that survives kill -9 and rebalances."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from harness.kafka import read_topic
from harness.stack import Stack
from tests.conftest import ProjectKey
from tests.support.api import Api, deadline_of, eventually, flow_is
from topics import INCIDENTS, IncidentEvent, decode
from topics.fields import ResultStatus

pytestmark = pytest.mark.e2e


async def _incident_events(services, topic_prefix: str) -> list[IncidentEvent]:
    return [decode(IncidentEvent, v)
            for _, v in await read_topic(services.kafka_bootstrap, INCIDENTS.name(topic_prefix))]


async def test_a_missed_deadline_opens_an_incident_within_2_seconds_with_no_other_traffic(
        api: Api, services, topic_prefix: str, stack: Stack) -> None:
    status, accepted = await api.receipt("inv_late", timeout_seconds=3)
    assert status == 202
    deadline = deadline_of(accepted)
    _, flow = await eventually(lambda: api.flow("inv_late"), flow_is("incident"), timeout=15)

    [opened] = [e for e in await _incident_events(services, topic_prefix) if e.reference == "inv_late"]
    assert opened.type == "opened" and opened.reason == "timeout"
    assert opened.incident_id == flow["incident_id"]
    lag = (opened.occurred_at - deadline).total_seconds()
    assert 0 <= lag <= 2, f"incident opened {lag:.2f}s after the deadline"

    async def scrape() -> str:
        async with api.session.get(stack.agents_url + "/metrics") as response:
            assert response.status == 200
            return await response.text()

    # The pending-flows gauge is refreshed by the deadline timer (every 0.25 s).
    metrics = await eventually(scrape, lambda text: "\nsendpromptly_pending_flows 0.0" in text, timeout=5)
    assert 'sendpromptly_incidents_opened_total{mode="test",reason="timeout"} 1.0' in metrics
    assert "sendpromptly_detection_lag_seconds_count 1.0" in metrics


async def test_a_success_before_the_deadline_never_becomes_an_incident(api: Api, services,
                                                                       topic_prefix: str) -> None:
    await api.receipt("inv_ok", timeout_seconds=2)
    await api.result("inv_ok", "succeeded")
    await eventually(lambda: api.flow("inv_ok"), flow_is("applied"))
    await asyncio.sleep(4)  # well past the deadline
    assert (await api.flow("inv_ok"))[1]["status"] == "applied"
    assert [e for e in await _incident_events(services, topic_prefix) if e.reference == "inv_ok"] == []


async def test_a_failure_received_before_the_deadline_but_applied_after_it_is_a_failed_outcome(
        api: Api, services, topic_prefix: str, project: ProjectKey) -> None:
    from datetime import timedelta

    from confluent_kafka import Producer

    from topics import RESULTS, Result, encode, flow_key

    status, accepted = await api.receipt("inv_failed_in_time", timeout_seconds=1)
    assert status == 202
    deadline = deadline_of(accepted)
    _, flow = await eventually(lambda: api.flow("inv_failed_in_time"), flow_is("incident"), timeout=15)
    assert flow["incident"]["reason"] == "timeout"
    # The app's failure was received before the deadline and reaches the agents only now (a direct
    # producer states when it received the signal).
    failed = Result(project_id=project.project_id, idempotency_key="failed-in-time",
                    reference="inv_failed_in_time", status=ResultStatus.FAILED,
                    received_at=deadline - timedelta(milliseconds=500))
    producer = Producer({"bootstrap.servers": services.kafka_bootstrap, "partitioner": "murmur2_random"})
    producer.produce(RESULTS.name(topic_prefix), key=flow_key(project.project_id, "inv_failed_in_time"),
                     value=encode(failed))
    assert producer.flush(10) == 0

    _, flow = await eventually(lambda: api.flow("inv_failed_in_time"),
                               lambda answer: answer[1].get("incident", {}).get("reason") == "failed_outcome")
    assert flow["status"] == "incident"
    opened = [e for e in await _incident_events(services, topic_prefix)
              if e.reference == "inv_failed_in_time" and e.type == "opened"]
    assert [e.reason for e in opened] == ["timeout", "failed_outcome"]
    assert len({e.incident_id for e in opened}) == 1, "one incident, its reason corrected"


async def test_a_late_success_resolves_the_timeout_incident(api: Api) -> None:
    await api.receipt("inv_slow", timeout_seconds=1)
    await eventually(lambda: api.flow("inv_slow"), flow_is("incident"), timeout=15)
    await api.result("inv_slow", "succeeded")
    await eventually(lambda: api.flow("inv_slow"), flow_is("resolved"))


async def test_kill_9_mid_stream_loses_no_deadline_and_doubles_no_incident(
        stack_factory, project: ProjectKey, http, services, topic_prefix: str) -> None:
    # As deployed: a static member, restarted at the same address, takes its partitions back at once.
    stack = stack_factory(SENDPROMPTLY_AGENTS_INSTANCE_ID="agents-0")
    api = Api(http, stack.base_url, project.api_key)
    # Applied flows, and pending ones whose deadlines fall while the worker is dead.
    for n in range(10):
        await api.receipt(f"inv_applied_{n}", timeout_seconds=4)
        await api.result(f"inv_applied_{n}", "succeeded")
    for n in range(10):
        await api.receipt(f"inv_due_{n}", timeout_seconds=4)
    await eventually(lambda: api.flow("inv_due_9"), flow_is("pending"))
    stack.agents.kill()
    await asyncio.sleep(5)  # every deadline passes while no agent runs
    stack.agents.start()
    # Well under the 60 s session of the killed member: the restart replaced it.
    stack.agents.wait_ready(stack.agents_url + "/readyz", timeout=30)

    for n in range(10):
        await eventually(partial(api.flow, f"inv_due_{n}"), flow_is("incident"), timeout=30)
    await asyncio.sleep(3)  # room for a wrongly doubled incident to show up
    events = await _incident_events(services, topic_prefix)
    opened = [e.reference for e in events if e.type == "opened"]
    assert sorted(opened) == sorted(f"inv_due_{n}" for n in range(10)), "each deadline fires exactly once"
    for n in range(10):
        assert (await api.flow(f"inv_applied_{n}"))[1]["status"] == "applied"


async def test_signals_sent_while_a_new_worker_is_down_are_all_applied_after_its_restart(
        stack_factory, project: ProjectKey, http) -> None:
    # A new group's worker killed within its first seconds, likely before its first offset commit
    # (the chaos suite once lost every signal sent while such a worker was down).
    stack = stack_factory(SENDPROMPTLY_AGENTS_INSTANCE_ID="agents-0")
    api = Api(http, stack.base_url, project.api_key)
    await api.receipt("inv_first", timeout_seconds=120)
    await eventually(lambda: api.flow("inv_first"), flow_is("pending"))
    stack.agents.kill()
    for n in range(10):
        await api.receipt(f"inv_down_{n}", timeout_seconds=120)
        await api.result(f"inv_down_{n}", "succeeded")
    stack.agents.start()
    stack.agents.wait_ready(stack.agents_url + "/readyz", timeout=30)

    for n in range(10):
        await eventually(partial(api.flow, f"inv_down_{n}"), flow_is("applied"), timeout=30)


async def test_a_rebalance_hands_deadlines_to_the_remaining_worker(
        stack_factory, project: ProjectKey, http, services, topic_prefix: str) -> None:
    first = stack_factory()
    second = stack_factory()  # a second set of processes: its agents join the same group
    api = Api(http, first.base_url, project.api_key)
    for n in range(12):
        await api.receipt(f"inv_moved_{n}", timeout_seconds=8)
    await eventually(lambda: api.flow("inv_moved_11"), flow_is("pending"))
    second.agents.stop()  # its partitions move to the first worker, with their pending deadlines

    for n in range(12):
        await eventually(partial(api.flow, f"inv_moved_{n}"), flow_is("incident"), timeout=45)
    events = await _incident_events(services, topic_prefix)
    opened = sorted(e.reference for e in events if e.type == "opened")
    assert opened == sorted(f"inv_moved_{n}" for n in range(12))




async def test_an_operators_manual_resolution_resolves_the_flow(api: Api, operator_api: Api) -> None:
    await api.receipt("inv_manual")
    await api.result("inv_manual", "failed")
    _, flow = await eventually(lambda: api.flow("inv_manual"), flow_is("incident"))
    await eventually(lambda: operator_api.get(f"/api/v1/incidents/{flow['incident_id']}"),
                     lambda a: a[0] == 200)
    status, _, _ = await operator_api.send("POST", f"/api/v1/incidents/{flow['incident_id']}/resolve",
                                           {"note": "refunded by hand"})
    assert status == 202
    # The agents, the only writer of flow state, apply the operator's event to the flow.
    await eventually(lambda: api.flow("inv_manual"), flow_is("resolved"))
