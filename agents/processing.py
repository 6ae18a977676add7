"""One input message through the flow tracker until it is done: what the tracker made of it
applied (outputs queued, the flow table written, the deadline index kept), passing failures tried
again, a message that fails for good dead-lettered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from faust.types import EventT, TableT

from agents import metrics
from agents.deadlines import DeadlineIndex
from agents.kafka_topics import AgentTopics
from agents.stored import Document
from agents.tracker import FlowTracker, Incoming, Outcome
from common.consumer_metrics import DEAD_LETTERS
from common.faults import Backoff, describe, is_transient
from common.observability import log_context
from topics import AuditEvent, encode, flow_key, project_key
from topics.catalog import key_fields

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    """A message as the agent got it: what the tracker reads, and what forwarding it keeps."""

    incoming: Incoming
    timestamp: float
    headers: Any

    @classmethod
    def of(cls, event: EventT[bytes]) -> Received:
        record = event.message
        return cls(Incoming(topic=record.topic, partition=record.partition, offset=record.offset,
                            key=event.key, value=event.value),
                   timestamp=record.timestamp, headers=record.headers)


class Processor:
    """Applies what the tracker makes of each message to the flow table, the deadline index and the
    output topics."""

    def __init__(self, topics: AgentTopics, flows: TableT[bytes, Document], index: DeadlineIndex):
        self._topics = topics
        self._flows = flows
        self._index = index

    async def process(self, tracker: FlowTracker, message: Received) -> None:
        """Handle ``message`` until it is done or dead-lettered; never raise. An exception leaving
        the agent would make faust restart it and acknowledge the message unprocessed."""
        try:
            with log_context(**key_fields(message.incoming.key)):
                await until_done(partial(self._handle, tracker, message), message.incoming)
        except Exception as exc:
            log.exception("%s failed for good; dead-lettering it", describe_message(message.incoming))
            letter = tracker.dead(message.incoming, f"processing_error: {describe(exc)}")
            await until_done(partial(self.apply, message.incoming.key, message, letter), message.incoming,
                             any_error=True)

    async def _handle(self, tracker: FlowTracker, message: Received) -> None:
        for flow, outcome in await tracker.handle(message.incoming, self._flows.get):
            await self.apply(flow, message, outcome)

    async def apply(self, key: bytes | None, message: Received, outcome: Outcome) -> None:
        # Outputs are queued, not awaited one by one: faust flushes the producer before it commits
        # an offset, so a message's outputs are in Kafka before the message counts as done. A
        # crash in between replays the message, and the tracker derives the outputs again from
        # the state stored here (their ids are deterministic, so a repeat is harmless).
        if outcome.forward_to is not None:
            await self._forward(message, outcome.forward_to)
        sent = await self._publish(outcome, key)
        if key is None:
            return
        if outcome.messages_first:
            # Delivered before the state changes, or a crash could leave the state changed and
            # the messages lost for good: a replay would find nothing to derive them from.
            await asyncio.gather(*sent)
        if outcome.forget:
            if key in self._flows:
                del self._flows[key]  # a tombstone in the changelog
        elif outcome.state is not None:
            self._flows[key] = outcome.state
        if outcome.indexed:
            if outcome.deadline is not None:
                self._index.track(key, outcome.deadline, message.incoming.partition)
            else:
                self._index.forget(key)

    async def _publish(self, outcome: Outcome, key: bytes | None) -> list[Awaitable[Any]]:
        """Queue the outcome's messages; each of the returned awaitables ends once Kafka has one."""
        sent: list[Awaitable[Any]] = []
        if outcome.dead_letter is not None:
            reason = outcome.dead_letter.reason
            log.warning("dead-lettered %s[%d]@%d: %s", outcome.dead_letter.topic,
                        outcome.dead_letter.partition, outcome.dead_letter.offset, reason)
            DEAD_LETTERS.labels(FlowTracker.CONSUMER, reason.split(":", 1)[0]).inc()
            sent.append(await self._topics.deadletter.send(key=key, value=encode(outcome.dead_letter)))
        for out in outcome.messages:
            if isinstance(out, AuditEvent):
                sent.append(await self._topics.audit.send(key=project_key(out.project_id), value=encode(out)))
            else:
                sent.append(await self._topics.incidents.send(key=flow_key(out.project_id, out.reference),
                                                              value=encode(out)))
        return sent

    async def _forward(self, message: Received, partition: int) -> None:
        log.warning("%s[%d]@%d is keyed for partition %d (murmur2); forwarded there. The producer "
                    "must partition with murmur2 (librdkafka: partitioner=murmur2_random)",
                    message.incoming.topic, message.incoming.partition, message.incoming.offset, partition)
        metrics.FORWARDED.labels(message.incoming.topic).inc()
        await self._topics.forward_to[message.incoming.topic].send(
            key=message.incoming.key, value=message.incoming.value, partition=partition,
            timestamp=message.timestamp, headers=message.headers)


def describe_message(message: Incoming) -> str:
    return f"{message.topic}[{message.partition}]@{message.offset}"


async def until_done(work: Callable[[], Awaitable[T]], what: str | Incoming, *,
                     any_error: bool = False) -> T:
    """``work()``, tried again with backoff for as long as it fails for a passing reason (any
    reason with ``any_error``); another failure is raised. ``what`` names the work in the log."""
    backoff = Backoff()
    while True:
        try:
            return await work()
        except Exception as exc:
            if not (any_error or is_transient(exc)):
                raise
            delay = backoff.next_delay()
            metrics.PROCESSING_RETRIES.labels(type(exc).__name__).inc()
            name = describe_message(what) if isinstance(what, Incoming) else what
            log.warning("%s failed (%s); trying again in %.1f s", name, describe(exc), delay)
            await asyncio.sleep(delay)
