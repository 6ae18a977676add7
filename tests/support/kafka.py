"""Reading what really landed on a topic, with a throw-away consumer group."""

from __future__ import annotations

import asyncio
import uuid

from confluent_kafka import Consumer


def read_topic_sync(bootstrap: str, topic: str, *, idle_seconds: float = 2.0) -> list[tuple[bytes | None, bytes]]:
    """Every message on ``topic`` from the beginning, until nothing new arrives for ``idle_seconds``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"peek-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages: list[tuple[bytes | None, bytes]] = []
    idle = 0.0
    try:
        while idle < idle_seconds:
            message = consumer.poll(0.5)
            if message is None or message.error():
                idle += 0.5
                continue
            idle = 0.0
            messages.append((message.key(), message.value()))
    finally:
        consumer.close()
    return messages


async def read_topic(bootstrap: str, topic: str, *, idle_seconds: float = 2.0) -> list[tuple[bytes | None, bytes]]:
    return await asyncio.to_thread(read_topic_sync, bootstrap, topic, idle_seconds=idle_seconds)
