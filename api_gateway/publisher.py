"""Publishing to Kafka from the gateway with confluent-kafka: acks=all, idempotent producer.

``publish`` returns only after the broker acknowledged the write, so a ``202`` is never sent for
a message Kafka does not have. A broker that is down or slow past ``timeout_ms`` raises
``PublishUnavailable``; the caller answers ``503`` and the client retries.
"""

from __future__ import annotations

import asyncio
import threading
import time

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Histogram

PRODUCE_SECONDS = Histogram(
    "sendpromptly_kafka_produce_seconds", "Time from produce to broker acknowledgement", ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PRODUCE_ERRORS = Counter("sendpromptly_kafka_produce_errors_total", "Failed produce attempts", ["topic", "error"])


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
            # A short linger batches concurrent requests into one produce without adding latency
            # a client would notice.
            "linger.ms": 2,
            "message.timeout.ms": timeout_ms,
            "socket.connection.setup.timeout.ms": min(timeout_ms, 10_000),
        })
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        # Delivery callbacks run on this thread; they hand the result to the event loop.
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        started = time.perf_counter()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                loop.call_soon_threadsafe(_settle, done, None)
            else:
                loop.call_soon_threadsafe(_settle, done, PublishUnavailable(f"Kafka refused the write: {err.str()}"))

        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            PRODUCE_ERRORS.labels(topic, type(exc).__name__).inc()
            raise PublishUnavailable(f"cannot queue the write: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.shield(done), self._timeout_ms / 1000 + 1)
        except (PublishUnavailable, TimeoutError) as exc:
            PRODUCE_ERRORS.labels(topic, type(exc).__name__).inc()
            raise PublishUnavailable(str(exc) or "Kafka did not acknowledge in time") from exc
        PRODUCE_SECONDS.labels(topic).observe(time.perf_counter() - started)

    def reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=2)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
