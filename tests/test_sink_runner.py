"""The sinks' consumer loop on the real broker: a record that fails for a passing reason is tried
again until it passes, one that can never pass is dead-lettered with the reason, the records after
it are still handled, and offsets are committed only past what was handled or dead-lettered. A
batched handler gets a fetch's records at once; a batch that fails is handled again record by record.
The sink's loops run beside the consumer, readiness names every part, and a loop that fails stops
them all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from functools import partial

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from prometheus_client import REGISTRY

from common.config import Settings
from harness.kafka import read_topic
from harness.services import Services
from sinks.contract import Batched, Loop, Sink
from sinks.runner import SinkRunner
from tests.support.api import eventually
from topics import DEADLETTER, RESULTS, DeadLetter, decode

NAME = "runner-test"


class Handler:
    """Fails ``transient`` with a lost connection twice, then handles it; fails ``bug`` always."""

    def __init__(self) -> None:
        self.handled: list[bytes] = []
        self.tries: dict[bytes, int] = {}

    async def __call__(self, record: ConsumerRecord) -> None:
        value = record.value
        self.tries[value] = self.tries.get(value, 0) + 1
        if value == b"transient" and self.tries[value] <= 2:
            raise ConnectionResetError("the database went away")
        if value == b"bug":
            raise KeyError("customer")
        self.handled.append(value)


@contextlib.asynccontextmanager
async def running(settings: Settings, handler: Handler | Batched) -> AsyncIterator[SinkRunner]:
    runner = SinkRunner(settings, name=NAME, sink=Sink(handlers={RESULTS: handler}))
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send(settings: Settings, *values: bytes) -> None:
    """All to one partition, so they are handled in this order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(RESULTS.name(settings.topic_prefix), value, partition=0)
    finally:
        await producer.stop()


async def committed(settings: Settings, partition: int) -> int | None:
    """The group's committed offset; None before it commits (or while its coordinator is elected)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}sendpromptly-sink-{NAME}")
    except GroupCoordinatorNotAvailableError:
        return None
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(RESULTS.name(settings.topic_prefix), partition))
    return None if found is None else found.offset


def dead_letters_counted() -> float:
    return REGISTRY.get_sample_value("sendpromptly_dead_letters_total",
                                     {"consumer": f"sinks.{NAME}", "reason": "processing_error"}) or 0.0


async def test_a_bug_is_dead_lettered_a_passing_failure_retried_and_the_rest_handled(
        services: Services, topic_prefix: str) -> None:
    settings = Settings(kafka_bootstrap=services.kafka_bootstrap, topic_prefix=topic_prefix)
    counted_before = dead_letters_counted()
    handler = Handler()
    await send(settings, b"transient", b"bug", b"after")

    async with running(settings, handler):
        # Committed past all three once the batch is done with: the bug does not hold it back.
        await eventually(partial(committed, settings, 0), lambda offset: offset == 3, timeout=60)
        assert handler.handled == [b"transient", b"after"]
        assert handler.tries == {b"transient": 3, b"bug": 1, b"after": 1}
        (letter_bytes,) = [value for _, value in
                           await read_topic(settings.kafka_bootstrap, DEADLETTER.name(topic_prefix))]
        letter = decode(DeadLetter, letter_bytes)
        assert (letter.topic, letter.partition, letter.offset) == (RESULTS.name(topic_prefix), 0, 1)
        assert letter.reason == "processing_error: KeyError: 'customer'"
        assert letter.consumer == f"sinks.{NAME}"
        assert dead_letters_counted() == counted_before + 1

    # A new run of the group starts after them.
    again = Handler()
    await send(settings, b"later")
    async with running(settings, again):
        await eventually(partial(committed, settings, 0), lambda offset: offset == 4, timeout=60)
    assert again.tries == {b"later": 1}


class BatchHandler:
    """Handles a batch at once, unless it holds ``bug``."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        values = [record.value for record in records]
        if b"bug" in values:
            raise KeyError("customer")
        self.batches.append(values)


async def test_a_batch_is_handled_at_once_and_one_that_fails_record_by_record(
        services: Services, topic_prefix: str) -> None:
    settings = Settings(kafka_bootstrap=services.kafka_bootstrap, topic_prefix=topic_prefix)
    # Sent before the runner starts, so that its first fetch brings them all.
    await send(settings, b"one", b"bug", b"two")
    handler = BatchHandler()
    async with running(settings, Batched(handler)):
        await eventually(partial(committed, settings, 0), lambda offset: offset == 3, timeout=60)
    # The batch failed as a whole, so each record was handled alone: only the bug is dead-lettered.
    assert handler.batches == [[b"one"], [b"two"]]
    (letter_bytes,) = [value for _, value in
                       await read_topic(settings.kafka_bootstrap, DEADLETTER.name(topic_prefix))]
    letter = decode(DeadLetter, letter_bytes)
    assert (letter.offset, letter.reason) == (1, "processing_error: KeyError: 'customer'")

    await send(settings, b"three", b"four", b"five")
    again = BatchHandler()
    async with running(settings, Batched(again)):
        await eventually(partial(committed, settings, 0), lambda offset: offset == 6, timeout=60)
    assert again.batches == [[b"three", b"four", b"five"]]


async def test_readiness_names_every_loop_and_a_loop_that_fails_stops_the_sink(
        services: Services, topic_prefix: str) -> None:
    settings = Settings(kafka_bootstrap=services.kafka_bootstrap, topic_prefix=topic_prefix)
    fail = asyncio.Event()

    async def beside() -> None:
        await fail.wait()
        raise KeyError("a bug in the loop")

    async def parts() -> dict[str, str]:
        return runner.readiness()

    runner = SinkRunner(settings, name=NAME, sink=Sink(handlers={RESULTS: Handler()},
                                                       loops=(Loop("beside", beside),)))
    assert runner.readiness() == {"consumer": "starting", "beside": "starting"}
    task = asyncio.create_task(runner.run())
    await eventually(parts, lambda found: found == {"consumer": "ready", "beside": "running"}, timeout=60)
    fail.set()
    with pytest.raises(KeyError, match="a bug in the loop"):
        await asyncio.wait_for(task, 30)
    # The consumer was stopped with it: the process ends, to be restarted.
    assert runner.readiness() == {"consumer": "ended", "beside": "ended"}
