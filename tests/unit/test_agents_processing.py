"""The order in which the agents apply an outcome. A forgotten flow's announcement must be in Kafka
before its state goes: after a crash in between, a replay would find no state to announce it from,
and the read model would keep the flow's rows for good. The topic here is a stand-in that holds
each send until the test delivers it: what is under test is the order of two steps, not Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from agents.deadlines import DeadlineIndex
from agents.kafka_topics import AgentTopics
from agents.processing import Processor, Received
from agents.tracker import Incoming, Outcome, TrackerTopics
from topics import AuditEvent, flow_key

KEY = flow_key("prj_a", "inv_1")
STORED: dict[str, Any] = {"states": {"test": {}}}


class HeldTopic:
    """Records what is sent; each send is delivered when the test says."""

    def __init__(self) -> None:
        self.held: list[asyncio.Future[None]] = []

    async def send(self, **_: Any) -> asyncio.Future[None]:
        self.held.append(asyncio.get_running_loop().create_future())
        return self.held[-1]


def processor(topic: HeldTopic, flows: dict[bytes, Any]) -> Processor:
    names = TrackerTopics(receipts="r", results="s", incidents="i", deadlines="d")
    held = cast(Any, topic)
    topics = AgentTopics(names=names, inputs=held, audit=held, incidents=held, deadlines=held,
                         deadletter=held, forward_to={})
    return Processor(topics, cast(Any, flows), DeadlineIndex())


def outcome(*, messages_first: bool) -> Outcome:
    announced = AuditEvent(event_id="aud_1", project_id="prj_a", actor="system:agents",
                           action="flow.forgotten", target="inv_1", occurred_at=datetime.now(UTC))
    return Outcome(state=None, messages=[announced], indexed=True, forget=True, messages_first=messages_first)


RECEIVED = Received(Incoming(topic="d", partition=0, offset=7, key=KEY, value=b""), timestamp=0.0,
                    headers=None)


async def test_a_forgotten_flow_is_announced_before_its_state_is_deleted() -> None:
    topic, flows = HeldTopic(), {KEY: STORED}
    applying = asyncio.create_task(processor(topic, flows).apply(KEY, RECEIVED, outcome(messages_first=True)))
    await asyncio.sleep(0.05)
    assert not applying.done() and flows == {KEY: STORED}, "the state went before Kafka had the announcement"

    topic.held[0].set_result(None)
    await applying
    assert flows == {}


async def test_an_announcement_kafka_refused_leaves_the_state_for_the_retry() -> None:
    topic, flows = HeldTopic(), {KEY: STORED}
    applying = asyncio.create_task(processor(topic, flows).apply(KEY, RECEIVED, outcome(messages_first=True)))
    await asyncio.sleep(0.05)
    topic.held[0].set_exception(ConnectionError("broker away"))
    with pytest.raises(ConnectionError):
        await applying
    assert flows == {KEY: STORED}


async def test_other_outcomes_do_not_wait_for_kafka() -> None:
    # Their outputs are derived again from the stored state after a crash; faust flushes the
    # producer before it commits the offset.
    topic, flows = HeldTopic(), {KEY: STORED}
    await processor(topic, flows).apply(KEY, RECEIVED, outcome(messages_first=False))
    assert flows == {} and not topic.held[0].done()
