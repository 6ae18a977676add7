"""What every sink shares: a consumer group on its topics, at-least-once, with dead letters, and
its background loops started, watched and stopped with it.

A sink (``sinks/contract.py``) supplies one ``handle(record)`` per topic, or a ``Batched`` handler
that takes the records a fetch brought of one partition at once (one transaction, one multi-row
statement, instead of one per record); this loop commits offsets only after a batch was handled or
dead-lettered, never skipping a record unprocessed. A record whose handling failed for a passing
reason (``common.faults.is_transient``: the database restarting, the broker away) is tried
again with backoff for as long as that lasts. One that can never be handled goes to the
dead-letter topic with the reason: ``SchemaError`` and ``Unprocessable`` say why themselves, any
other failure (a bug, a constraint) is ``processing_error``, so that one record never stalls its
partition. A batch that fails for good is handled again a record at a time, so that only the
record that cannot be handled is dead-lettered.

The sink's loops run beside the consumer; they outlast passing failures themselves, so one that
ends is a bug: the runner then stops everything and the process exits to be restarted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import CommitFailedError, IllegalStateError

from common.config import Settings
from common.consumer_metrics import DEAD_LETTERS, GroupMetrics
from common.faults import describe
from common.observability import log_context, metrics_response
from sinks.contract import Batched, Sink, Unprocessable
from sinks.retrying import retry_transient
from topics import DEADLETTER, DeadLetter, SchemaError, encode
from topics.catalog import key_fields

log = logging.getLogger(__name__)

PROCESSING_ERROR = "processing_error"
# Lag and freshness are measured between batches, at most this often.
REPORT_SECONDS = 1.0
# The consumer's name among the sink's parts in /readyz.
CONSUMER = "consumer"
READY, STARTING, RUNNING, ENDED = "ready", "starting", "running", "ended"


class LoopEnded(Exception):
    """A part of a sink that runs until stopped ended by itself."""


class SinkRunner:
    def __init__(self, settings: Settings, *, name: str, sink: Sink):
        self._settings = settings
        self.name = name
        # By topic name as the records carry it: each record goes to its own topic's handler.
        self._handlers = {topic.name(settings.topic_prefix): handle
                          for topic, handle in sink.handlers.items()}
        self._loops = sink.loops
        names = [loop.name for loop in sink.loops]
        if CONSUMER in names or len(set(names)) != len(names):
            raise ValueError(f"sink {name}: its loops need names of their own other than {CONSUMER!r}: "
                             f"{names}")
        # The running parts (the consumer and each loop) by name, once started.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._deadletter_topic = DEADLETTER.name(settings.topic_prefix)
        self._group = f"{settings.topic_prefix}sendpromptly-sink-{name}"
        self._metrics = GroupMetrics(self._group)
        # (topic, partition) -> Kafka timestamp (s) of the newest record handled there.
        self._applied: dict[tuple[str, int], float] = {}
        self._consuming = asyncio.Event()

    async def run(self) -> None:
        """Consume, with the sink's loops running beside, until cancelled; raises (stopping the
        rest) as soon as any part fails or ends."""
        self._tasks = {loop.name: asyncio.create_task(loop.run(), name=f"sink {self.name}: {loop.name}")
                       for loop in self._loops}
        self._tasks[CONSUMER] = asyncio.create_task(self._consume(), name=f"sink {self.name}: {CONSUMER}")
        try:
            done, _ = await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
            ended = next(name for name, task in self._tasks.items() if task in done)
            failure = self._tasks[ended].exception()
            log.error("sink %s: its %s %s; stopping the process, to be restarted", self.name, ended,
                      "failed" if failure else "ended by itself", exc_info=failure)
            raise failure or LoopEnded(f"sink {self.name}: its {ended} ended by itself")
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def readiness(self) -> dict[str, str]:
        """Each part by name: the consumer ``ready`` once it joined its group, a loop ``running``."""
        parts = {CONSUMER: READY if self._consuming.is_set() else STARTING}
        for loop in self._loops:
            task = self._tasks.get(loop.name)
            parts[loop.name] = STARTING if task is None else ENDED if task.done() else RUNNING
        if (consumer := self._tasks.get(CONSUMER)) is not None and consumer.done():
            parts[CONSUMER] = ENDED
        return parts

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            *self._handlers, bootstrap_servers=self._settings.kafka_bootstrap, group_id=self._group,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap, acks="all", enable_idempotence=True,
        )
        try:
            await producer.start()
            await consumer.start()
            self._consuming.set()
            log.info("sink %s consuming %s as group %s", self.name, ", ".join(self._handlers), self._group)
            reported_at = 0.0
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    await self._handle_records(records, producer)
                    self._applied[records[-1].topic, records[-1].partition] = records[-1].timestamp / 1000
                if batch:
                    await self._commit(consumer)
                if time.monotonic() - reported_at >= REPORT_SECONDS:
                    await self._report(consumer)
                    reported_at = time.monotonic()
        finally:
            await consumer.stop()
            await producer.stop()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        # aiokafka itself retries a commit while the broker or coordinator is away. Anything else
        # it raises ends the process with a non-zero status, to be restarted from the last commit.
        try:
            await consumer.commit()
        except CommitFailedError as exc:
            # The group rebalanced during the batch: its partitions resume from the last committed
            # offsets, here or on another member, and handling a record again is harmless.
            log.warning("sink %s: offsets not committed (%s); the batch will be handled again",
                        self.name, exc)

    async def _report(self, consumer: AIOKafkaConsumer) -> None:
        """Lag per partition held: the end of the partition in the last fetch answer less the
        position, which between batches is the next record to handle."""
        lags: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            # A rebalance may revoke it while the loop awaits a position.
            end = consumer.highwater(tp) if tp in consumer.assignment() else None
            if end is None:  # or no fetch answered for it yet, just after an assignment
                continue
            try:
                lags[tp.topic, tp.partition] = max(0, end - await consumer.position(tp))
            except IllegalStateError:  # revoked meanwhile
                continue
        self._metrics.report(lags, self._applied)

    async def _handle_records(self, records: list[ConsumerRecord], producer: AIOKafkaProducer) -> None:
        """Handle one partition's records of a fetch, in order, each handled or dead-lettered."""
        handler = self._handlers[records[0].topic]
        if not isinstance(handler, Batched):
            for record in records:
                await self._handle_or_dead_letter(record, partial(handler, record), producer)
            return
        if len(records) > 1:
            first, last = records[0], records[-1]
            where = f"{first.topic}[{first.partition}]@{first.offset}-{last.offset}"
            try:
                await retry_transient(partial(handler.handle, records),
                                      what=f"sink {self.name} handling {where}")
                return
            except Exception as exc:  # a record it cannot handle: which one, the records alone tell
                log.warning("sink %s: the batch %s failed (%s); handling its records one at a time",
                            self.name, where, describe(exc))
        for record in records:
            await self._handle_or_dead_letter(record, partial(handler.handle, [record]), producer)

    async def _handle_or_dead_letter(self, record: ConsumerRecord, handle: Callable[[], Awaitable[None]],
                                     producer: AIOKafkaProducer) -> None:
        """Handle ``record`` with ``handle`` (trying again while failures are transient) or
        dead-letter it."""
        with log_context(**key_fields(record.key)):
            await self._handle_in_context(record, handle, producer)

    async def _handle_in_context(self, record: ConsumerRecord, handle: Callable[[], Awaitable[None]],
                                 producer: AIOKafkaProducer) -> None:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            await retry_transient(handle, what=f"sink {self.name} handling {where}")
            return
        except (SchemaError, Unprocessable) as exc:
            reason, detail = exc.reason, exc.detail
        except Exception as exc:
            log.exception("sink %s cannot handle %s", self.name, where)
            reason, detail = PROCESSING_ERROR, describe(exc)
        await self._dead_letter(producer, record, reason, detail)

    async def _dead_letter(self, producer: AIOKafkaProducer, record: ConsumerRecord, reason: str,
                           detail: str) -> None:
        letter = DeadLetter.of(
            topic=record.topic, partition=record.partition, offset=record.offset, key=record.key,
            value=record.value, reason=f"{reason}: {detail}", consumer=f"sinks.{self.name}",
            failed_at=datetime.now(UTC),
        )
        await retry_transient(partial(producer.send_and_wait, self._deadletter_topic, encode(letter),
                                      key=record.key),
                              what=f"sink {self.name} sending a dead letter")
        DEAD_LETTERS.labels(f"sinks.{self.name}", reason).inc()
        log.warning("sink %s dead-lettered %s[%d]@%d: %s: %s", self.name, record.topic, record.partition,
                    record.offset, reason, detail)


async def serve_health(runner: SinkRunner, host: str, port: int) -> web.AppRunner:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        """Ready when the consumer has joined its group and every loop is running."""
        parts = runner.readiness()
        ready = all(state in (READY, RUNNING) for state in parts.values())
        return web.json_response({"status": READY if ready else STARTING, "parts": parts},
                                 status=200 if ready else 503)

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
