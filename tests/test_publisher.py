"""The gateway's publisher against the real broker: a batch's messages are reported on one by one,
and one that Kafka cannot take fails alone."""

from __future__ import annotations

import pytest

from api_gateway.publisher import Publisher, PublishUnavailable
from harness.kafka import read_topic
from harness.services import Services
from topics import RECEIPTS


async def test_publish_many_reports_each_message_and_lands_exactly_the_acknowledged_ones(
        services: Services, topic_prefix: str) -> None:
    topic = RECEIPTS.name(topic_prefix)
    publisher = Publisher(services.kafka_bootstrap, timeout_ms=10_000)
    # Far above the broker's largest message (1 MiB by default): refused when it is queued.
    too_large = b"x" * (3 * 1024 * 1024)
    messages = [(f"k{n}".encode(), f"v{n}".encode()) for n in range(50)]
    messages.insert(20, (b"large", too_large))
    try:
        outcomes = await publisher.publish_many(topic, messages)
    finally:
        publisher.close()

    assert [n for n, outcome in enumerate(outcomes) if outcome is not None] == [20]
    assert isinstance(outcomes[20], PublishUnavailable)
    landed = await read_topic(services.kafka_bootstrap, topic)
    assert sorted(landed) == sorted(message for message in messages if message[0] != b"large")


async def test_publish_raises_when_kafka_refuses_the_message(services: Services, topic_prefix: str) -> None:
    publisher = Publisher(services.kafka_bootstrap, timeout_ms=10_000)
    try:
        await publisher.publish(RECEIPTS.name(topic_prefix), b"k", b"v")
        with pytest.raises(PublishUnavailable, match="cannot queue the write"):
            await publisher.publish(RECEIPTS.name(topic_prefix), b"k", b"x" * (3 * 1024 * 1024))
    finally:
        publisher.close()
