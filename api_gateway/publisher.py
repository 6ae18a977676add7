"""Publishing to Kafka from the gateway with confluent-kafka: acks=all, idempotent producer.

``publish`` returns only after the broker acknowledged the write, so a ``202`` is never sent for
a message Kafka does not have. A broker that is down or slow past ``timeout_ms`` raises
``PublishUnavailable``; the caller answers ``503`` and the client retries.

Delivery reports are served by ``poll`` on the event loop's own thread, every millisecond while
messages are outstanding. A separate polling thread would need the GIL for every report, and under
load it waits for it up to the interpreter's switch interval (5 ms) per report.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Histogram

from api_gateway.metrics import LATENCY_BUCKETS, child

PRODUCE_SECONDS = Histogram(
    "sendpromptly_kafka_produce_seconds", "Time from produce to broker acknowledgement", ["topic"],
    buckets=LATENCY_BUCKETS,
)
PRODUCE_ERRORS = Counter("sendpromptly_kafka_produce_errors_total", "Failed produce attempts",
                         ["topic", "error"])

POLL_INTERVAL_SECONDS = 0.001


class PublishUnavailable(RuntimeError):
    """Kafka did not acknowledge in time; nothing may be assumed about the write."""


class Publisher:
    def __init__(self, bootstrap: str, *, timeout_ms: int, client_id: str = "sendpromptly-gateway"):
        self._timeout_ms = timeout_ms
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            # The Java client's (and aiokafka's, so faust's) partitioner: every producer must put a
            # key on the same partition, or a flow's receipts, results and incident events would
            # not meet in the task that owns the flow.
            "partitioner": "murmur2_random",
            # No linger: every request waits for its ack, so the ack's latency is the request's. What
            # queues while earlier produce requests are in flight still goes out in one batch; a
            # 2 ms linger measured lower throughput and higher latency (bench/RESULTS.md).
            "linger.ms": 0,
            # librdkafka reports every message within this time, as an error if it was not
            # acknowledged: the bound on how long ``publish`` waits.
            "message.timeout.ms": timeout_ms,
            "socket.connection.setup.timeout.ms": min(timeout_ms, 10_000),
        })
        self._poller: asyncio.Task[None] | None = None

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Publish one message; ``PublishUnavailable`` if Kafka did not acknowledge it."""
        [error] = await self.publish_many(topic, [(key, value)])
        if error is not None:
            raise error

    async def publish_many(self, topic: str,
                           messages: Sequence[tuple[bytes, bytes]]) -> list[PublishUnavailable | None]:
        """Publish ``(key, value)`` messages at once and wait until Kafka reported on each: its
        ``PublishUnavailable``, or None once acknowledged. One wait and one timer for them all, so
        a batch costs little more than its produce calls."""
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        # Each message's outcome; a report that never comes leaves it this.
        overdue_error = PublishUnavailable("Kafka did not acknowledge in time")
        outcomes: list[PublishUnavailable | None] = [overdue_error] * len(messages)
        done: asyncio.Future[None] = loop.create_future()
        outstanding = len(messages)
        started = time.perf_counter()
        acked = child(PRODUCE_SECONDS, topic)

        def report(index: int, err: KafkaError | None, msg: Message) -> None:
            nonlocal outstanding
            if done.done():  # given up on (overdue), or the request was cancelled
                return
            if err is None:
                outcomes[index] = None
                acked.observe(time.perf_counter() - started)
            else:
                outcomes[index] = PublishUnavailable(f"Kafka refused the write: {err.str()}")
                PRODUCE_ERRORS.labels(topic, "PublishUnavailable").inc()
            outstanding -= 1
            if outstanding == 0:
                _settle(done, None)

        def delivered(index: int, err: KafkaError | None, msg: Message) -> None:
            if threading.get_ident() == loop_thread:
                report(index, err, msg)
            else:  # served by ``close``'s flush, on another thread
                loop.call_soon_threadsafe(report, index, err, msg)

        for index, (key, value) in enumerate(messages):
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=partial(delivered, index))
            except (BufferError, KafkaException) as exc:
                PRODUCE_ERRORS.labels(topic, type(exc).__name__).inc()
                outcomes[index] = PublishUnavailable(f"cannot queue the write: {exc}")
                outstanding -= 1
        if outstanding == 0:
            return outcomes
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_while_outstanding())
        # Should librdkafka's reports never come, the request still ends.
        overdue = loop.call_later(self._timeout_ms / 1000 + 1, _settle, done, None)
        try:
            await done
        finally:
            overdue.cancel()
        if outstanding:
            PRODUCE_ERRORS.labels(topic, "PublishUnavailable").inc(outstanding)
        return outcomes

    async def _poll_while_outstanding(self) -> None:
        try:
            # len(): messages not yet acknowledged plus reports not yet served.
            while len(self._producer):
                self._producer.poll(0)
                await asyncio.sleep(POLL_INTERVAL_SECONDS)
        finally:
            self._poller = None

    def reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():  # the request was cancelled
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
