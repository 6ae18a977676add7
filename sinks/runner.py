"""What every sink shares: a consumer group on its topics, at-least-once, with dead letters.

A sink supplies one ``handle(record)`` per topic; this loop commits offsets only after a batch was
handled, sends records that can never be handled (``SchemaError``, ``Unprocessable``) to the
dead-letter topic with the reason, and retries a batch whose handling failed for a passing reason
(the database restarting) without losing or skipping anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from sendpromptly.config import Settings
from sendpromptly.observability import DEAD_LETTERS, metrics_response
from topics import DEADLETTER, DeadLetter, SchemaError, TopicSpec, encode

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 2.0


class Unprocessable(Exception):
    """This record can never be handled (e.g. it names a project that does not exist)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Handler = Callable[[ConsumerRecord], Awaitable[None]]


class SinkRunner:
    def __init__(self, settings: Settings, *, name: str, handlers: Mapping[TopicSpec, Handler]):
        self._settings = settings
        self.name = name
        # By topic name as the records carry it: each record goes to its own topic's handler.
        self._handlers = {topic.name(settings.topic_prefix): handle for topic, handle in handlers.items()}
        self._deadletter_topic = DEADLETTER.name(settings.topic_prefix)
        self._group = f"{settings.topic_prefix}sendpromptly-sink-{name}"
        self.ready = asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self._handlers, bootstrap_servers=self._settings.kafka_bootstrap, group_id=self._group,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        )
        await producer.start()
        await consumer.start()
        self.ready.set()
        log.info("sink %s consuming %s as group %s", self.name, ", ".join(self._handlers), self._group)
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        await self._handle_until_done(record, producer)
                if batch:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle_until_done(self, record: ConsumerRecord, producer: AIOKafkaProducer) -> None:
        handle = self._handlers[record.topic]
        while True:
            try:
                await handle(record)
                return
            except SchemaError as exc:
                await self._dead_letter(producer, record, exc.reason, exc.detail)
                return
            except Unprocessable as exc:
                await self._dead_letter(producer, record, exc.reason, exc.detail)
                return
            except Exception:
                # Passing trouble (database restarting, network): retry the same record rather
                # than skip it; offsets stay uncommitted, so a crash here loses nothing either.
                log.exception("sink %s failed on %s[%d]@%d; retrying", self.name, record.topic,
                              record.partition, record.offset)
                await asyncio.sleep(RETRY_DELAY_SECONDS)

    async def _dead_letter(self, producer: AIOKafkaProducer, record: ConsumerRecord, reason: str,
                           detail: str) -> None:
        DEAD_LETTERS.labels(f"sinks.{self.name}", reason).inc()
        log.warning("sink %s dead-letters %s[%d]@%d: %s: %s", self.name, record.topic, record.partition,
                    record.offset, reason, detail)
        letter = DeadLetter.of(
            topic=record.topic, partition=record.partition, offset=record.offset, key=record.key,
            value=record.value, reason=f"{reason}: {detail}", consumer=f"sinks.{self.name}",
            failed_at=datetime.now(UTC),
        )
        await producer.send_and_wait(self._deadletter_topic, encode(letter), key=record.key)


async def serve_health(runner: SinkRunner, host: str, port: int) -> web.AppRunner:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready = runner.ready.is_set()
        return web.json_response({"status": "ready" if ready else "starting"}, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        return metrics_response()

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app_runner = web.AppRunner(app, access_log=None)
    await app_runner.setup()
    await web.TCPSite(app_runner, host, port).start()
    return app_runner
