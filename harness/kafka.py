"""Reading what really landed on a topic: every partition from its start to its current end."""

from __future__ import annotations

import asyncio
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def read_topic_sync(bootstrap: str, topic: str, *, timeout: float = 30.0) -> list[tuple[bytes | None, bytes]]:
    """All messages now on ``topic``. Partitions are assigned directly (no consumer group), and
    reading stops at each partition's high watermark, so the answer does not depend on timing."""
    messages: list[tuple[bytes | None, bytes]] = []
    for key, value in _records(bootstrap, topic, timeout):
        assert value is not None, f"a record without a value on {topic}"
        messages.append((key, value))
    return messages


def _records(bootstrap: str, topic: str, timeout: float) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in partitions}
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        messages: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout}s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():  # end-of-partition events and transient errors: keep polling
                continue
            offset = message.offset()
            assert offset is not None
            messages.append((message.key(), message.value()))
            if offset + 1 >= ends[message.partition()]:
                pending.discard(message.partition())
        return messages
    finally:
        consumer.close()


async def read_topic(bootstrap: str, topic: str, *,
                     timeout: float = 30.0) -> list[tuple[bytes | None, bytes]]:
    return await asyncio.to_thread(read_topic_sync, bootstrap, topic, timeout=timeout)


async def latest_values(bootstrap: str, topic: str, *,
                        timeout: float = 30.0) -> dict[bytes | None, bytes | None]:
    """Each key's newest value now on ``topic``, a compacted topic's view: None for a tombstone."""
    return dict(await asyncio.to_thread(_records, bootstrap, topic, timeout))
