"""The faust application: wires the flow tracker to its topics, its changelog-backed table and
the wall-clock deadline timer."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

import faust
from faust.tables.manager import TableManager
from faust.transport.consumer import Consumer
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents import metrics, stored
from agents.deadlines import DeadlineIndex, by_partition
from agents.kafka_consumer import committed_offset, last_fetch, use_at_least_once_consumer
from agents.projects import ProjectDirectory
from agents.tracker import FlowTracker, Incoming, Outcome, TrackerTopics, partition_of
from agents.watermark import PartitionEnd, ResultsWatermark
from common.config import Settings
from common.consumer_metrics import DEAD_LETTERS, GroupMetrics
from common.faults import Backoff, describe, is_transient
from common.observability import log_context, logging_config
from store.db import open_pool
from topics import (
    AUDIT,
    DEADLETTER,
    DEADLINES,
    INCIDENTS,
    RECEIPTS,
    RESULTS,
    AuditEvent,
    DeadlineBatch,
    encode,
    flow_key,
    project_key,
)
from topics.catalog import key_fields

log = logging.getLogger(__name__)

FLOW_TABLE = "flow-state"
TIMER_SECONDS = 0.25  # an incident opens no later than 2 s after its deadline
LAG_SECONDS = 5.0
REBUILD_YIELD_EVERY = 5000
# How often the stored flows are read for those closed longer than the retention: a twenty-fourth
# of it (a flow is forgotten at most ~4 % late), within these bounds. Each read of every stored flow
# costs ~7 µs a flow (bench/RESULTS.md), so each flow is read ~24 times, not retention/1 h times.
# The index rebuild after every rebalance (so after every restart) looks for them too.
SWEEP_SECONDS_BOUNDS = (1.0, 24 * 3600.0)
T = TypeVar("T")


def create_app(settings: Settings) -> faust.App:
    prefix = settings.topic_prefix
    app = faust.App(
        f"{prefix}sendpromptly-agents",
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        store=settings.agents_store,
        datadir=settings.agents_datadir,
        topic_partitions=settings.flow_partitions,
        topic_replication_factor=settings.replication_factor,
        producer_acks=-1,
        # Outputs (audit, incidents, changelog) are flushed before each commit anyway; a short
        # linger lets them go out in batches instead of one request per message.
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.agents_instance_id or None,
        web_bind=settings.http_host,
        web_port=settings.agents_web_port,
        web_host=settings.http_host,
    )
    use_at_least_once_consumer(app)

    def raw_topic(*topic_names: str) -> faust.TopicT:
        return app.topic(*topic_names, key_serializer="raw", value_serializer="raw")

    names = TrackerTopics(receipts=RECEIPTS.name(prefix), results=RESULTS.name(prefix),
                          incidents=INCIDENTS.name(prefix), deadlines=DEADLINES.name(prefix))
    # One stream over every co-partitioned input: a flow's receipts, results, operator actions and
    # due deadlines all arrive on the same partition number, in order, to the task that owns it.
    inputs = raw_topic(names.receipts, names.results, names.incidents, names.deadlines)
    audit = raw_topic(AUDIT.name(prefix))
    incidents = raw_topic(names.incidents)
    deadlines = raw_topic(names.deadlines)
    deadletter = raw_topic(DEADLETTER.name(prefix))
    # A signal that came on the wrong partition goes back to its own topic, on the right one.
    forward_to = {name: raw_topic(name) for name in (names.receipts, names.results, names.incidents)}
    # key_type=bytes stores the flow key as is (faust would JSON-encode it otherwise); values are JSON.
    flows = app.Table(FLOW_TABLE, partitions=settings.flow_partitions, key_type=bytes,
                      options=store_options(settings))
    index = DeadlineIndex()
    watermark = ResultsWatermark()
    # Where a results partition's log begins, for partitions the group has never committed on:
    # consumption starts there (auto_offset_reset=earliest). Asked of the broker by a slow timer,
    # so the deadline timer never waits on it.
    log_starts: dict[TP, int] = {}
    resources: dict[str, FlowTracker] = {}
    # (topic, partition) -> Kafka timestamp (s) of the newest message applied there: freshness.
    applied: dict[tuple[str, int], float] = {}
    group_metrics = GroupMetrics(app.conf.id)

    async def tracker() -> FlowTracker:
        if "tracker" not in resources:
            pool = await until_done(lambda: open_pool(settings.database_url, max_size=4),
                                    "opening the database pool")
            resources["tracker"] = FlowTracker(topics=names, projects=ProjectDirectory(pool),
                                               partitions=settings.flow_partitions,
                                               retention=settings.flow_retention)
        return resources["tracker"]

    async def publish(outcome: Outcome, key: bytes | None) -> None:
        if outcome.dead_letter is not None:
            reason = outcome.dead_letter.reason
            log.warning("dead-lettered %s[%d]@%d: %s", outcome.dead_letter.topic,
                        outcome.dead_letter.partition, outcome.dead_letter.offset, reason)
            DEAD_LETTERS.labels(FlowTracker.CONSUMER, reason.split(":", 1)[0]).inc()
            await deadletter.send(key=key, value=encode(outcome.dead_letter))
        for out in outcome.messages:
            if isinstance(out, AuditEvent):
                await audit.send(key=project_key(out.project_id), value=encode(out))
            else:
                await incidents.send(key=flow_key(out.project_id, out.reference), value=encode(out))

    async def forward(message: Received, partition: int) -> None:
        log.warning("%s[%d]@%d is keyed for partition %d (murmur2); forwarded there. The producer "
                    "must partition with murmur2 (librdkafka: partitioner=murmur2_random)",
                    message.incoming.topic, message.incoming.partition, message.incoming.offset, partition)
        metrics.FORWARDED.labels(message.incoming.topic).inc()
        await forward_to[message.incoming.topic].send(
            key=message.incoming.key, value=message.incoming.value, partition=partition,
            timestamp=message.timestamp, headers=message.headers)

    async def apply(key: bytes | None, message: Received, outcome: Outcome) -> None:
        # Outputs are queued, not awaited one by one: faust flushes the producer before it commits
        # an offset, so a message's outputs are in Kafka before the message counts as done. A
        # crash in between replays the message, and the tracker derives the outputs again from
        # the state stored here (their ids are deterministic, so a repeat is harmless).
        if outcome.forward_to is not None:
            await forward(message, outcome.forward_to)
        await publish(outcome, key)
        if key is None:
            return
        if outcome.forget:
            if key in flows:
                del flows[key]  # a tombstone in the changelog
        elif outcome.state is not None:
            flows[key] = outcome.state
        if outcome.indexed:
            if outcome.deadline is not None:
                index.track(key, outcome.deadline, message.incoming.partition)
            else:
                index.forget(key)

    async def handle(flow_tracker: FlowTracker, message: Received) -> None:
        for flow, outcome in await flow_tracker.handle(message.incoming, flows.get):
            await apply(flow, message, outcome)

    async def process(flow_tracker: FlowTracker, message: Received) -> None:
        """Handle ``message`` until it is done or dead-lettered; never raise. An exception leaving
        the agent would make faust restart it and acknowledge the message unprocessed."""
        try:
            with log_context(**key_fields(message.incoming.key)):
                await until_done(partial(handle, flow_tracker, message), message.incoming)
        except Exception as exc:
            log.exception("%s failed for good; dead-lettering it", describe_message(message.incoming))
            letter = flow_tracker.dead(message.incoming, f"processing_error: {describe(exc)}")
            await until_done(partial(apply, message.incoming.key, message, letter), message.incoming,
                             any_error=True)

    @app.agent(inputs)
    async def track_flows(stream: faust.StreamT[bytes]) -> None:
        flow_tracker = await tracker()
        async for event in stream.events():
            record = event.message
            message = Received(
                Incoming(topic=record.topic, partition=record.partition, offset=record.offset,
                         key=event.key, value=event.value),
                timestamp=record.timestamp, headers=record.headers)
            # Every flow a message concerns lives on its partition (a batch of due deadlines is sent
            # to the partition that owns its flows), so the table writes go to this partition's
            # store and changelog, as faust takes them from the current event.
            await process(flow_tracker, message)
            applied[record.topic, record.partition] = record.timestamp
            if record.topic == names.results:
                watermark.applied(record.partition, record.offset,
                                  datetime.fromtimestamp(record.timestamp, UTC))

    @app.on_rebalance_complete.connect
    async def rebuild_index(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        """The partitions this worker owns changed: index their pending flows afresh.

        A million stored flows take tens of seconds to read, so the loop yields now and then:
        /healthz keeps answering (the liveness probe), and a newer rebalance's rebuild takes over
        from this one instead of both filling the index."""
        generation = index.clear()
        forget = ForgetBatches(send_forget)
        now = datetime.now(UTC)
        for n, (key, doc) in enumerate(flows.items(), 1):
            deadline = stored.pending_deadline(doc)
            if deadline is not None:
                index.track(key, deadline, partition_in(key, doc))
            elif stored.forgettable(doc, retention=settings.flow_retention, now=now):
                await forget.add(key, partition_in(key, doc))
            if n % REBUILD_YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if index.generation != generation:
                    return
        await forget.flush()
        metrics.PENDING_FLOWS.set(len(index))
        log.info("deadline index rebuilt: %d pending flows, %d flows to forget", len(index), forget.sent)

    def results_ends() -> dict[int, PartitionEnd]:
        """What the consumer knows of the end of each results partition it owns: no broker call,
        the figures of its last fetch responses."""
        consumer = cast(Consumer, app.consumer)
        ends: dict[int, PartitionEnd] = {}
        for tp in consumer.assignment():
            if tp.topic != names.results:
                continue
            known = last_fetch(consumer, tp)
            if known is not None:
                end, answered_at = known
                start = committed_offset(consumer, tp)
                ends[tp.partition] = PartitionEnd(end, answered_at,
                                                  log_starts.get(tp, 0) if start is None else start)
        return ends

    @timer(app, TIMER_SECONDS)
    @round_survives_errors
    async def fire_deadlines() -> None:
        # A round that fails loses nothing: every flow it took from the index comes due again after
        # REFIRE_AFTER.
        due = index.due(watermark.cutoffs(results_ends()), now=datetime.now(UTC))
        for partition, keys in by_partition(due, DeadlineBatch.MAX_KEYS):
            await deadlines.send(value=encode(DeadlineBatch.of(keys)), partition=partition)
        index.compact()
        # Here rather than per message: a gauge set takes a lock, and a scrape needs no fresher value.
        metrics.PENDING_FLOWS.set(len(index))

    def partition_in(key: bytes, doc: stored.Document) -> int:
        partition = stored.partition_in(doc)
        # Written before the partition was stored beside the state: where its key goes.
        return partition_of(key, settings.flow_partitions) if partition is None else partition

    async def send_forget(batch: DeadlineBatch, partition: int) -> None:
        await deadlines.send(value=encode(batch), partition=partition)

    @timer(app, min(max(settings.flow_retention.total_seconds() / 24, SWEEP_SECONDS_BOUNDS[0]),
                    SWEEP_SECONDS_BOUNDS[1]))
    @round_survives_errors
    async def forget_closed_flows() -> None:
        """Name the stored flows closed longer than the retention, in batches sent to their own
        partition, where the agent forgets them (tables may only change inside stream processing;
        it checks each again there)."""
        forget = ForgetBatches(send_forget)
        now = datetime.now(UTC)
        for n, (key, doc) in enumerate(flows.items(), 1):
            if stored.forgettable(doc, retention=settings.flow_retention, now=now):
                await forget.add(key, partition_in(key, doc))
            if n % REBUILD_YIELD_EVERY == 0:
                await asyncio.sleep(0)
        await forget.flush()

    @timer(app, LAG_SECONDS)
    @round_survives_errors
    async def measure_lag() -> None:
        # The concrete consumer, not the ConsumerT interface: the committed offsets are its own.
        consumer = cast(Consumer, app.consumer)
        lags: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            if tp.topic in (names.receipts, names.results, names.incidents, names.deadlines):
                # faust keeps committed offsets privately; lag = end of partition - committed.
                highwater = consumer.highwater(tp)
                if highwater is None:  # not fetched yet, just after an assignment
                    continue
                lags[tp.topic, tp.partition] = max(0, highwater - (committed_offset(consumer, tp) or 0))
        group_metrics.report(lags, applied)
        # A results partition whose records all expired before this group ever committed there
        # would otherwise look behind forever, and its deadlines would never be judged.
        never = [tp for tp in consumer.assignment()
                 if tp.topic == names.results and committed_offset(consumer, tp) is None]
        if never:
            log_starts.update(await asyncio.wait_for(consumer.earliest_offsets(*never), LAG_SECONDS))

    @app.page("/healthz")
    async def healthz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        ready = cast(TableManager, app.tables).recovery.completed.is_set() and not app.rebalancing
        return view.json({"status": "ready" if ready else "starting"}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp refuses a charset inside content_type; Prometheus reads the bare type fine.
        return view.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.partition(";")[0])

    return app


class ForgetBatches:
    """Flow keys found forgettable, sent as ``forget`` batches of at most ``MAX_KEYS`` to the
    partition that owns them as they fill up, the rest on ``flush``."""

    def __init__(self, send: Callable[[DeadlineBatch, int], Awaitable[None]]):
        self._send = send
        self._keys: dict[int, list[bytes]] = {}
        self.sent = 0

    async def add(self, key: bytes, partition: int) -> None:
        keys = self._keys.setdefault(partition, [])
        keys.append(key)
        if len(keys) == DeadlineBatch.MAX_KEYS:
            await self._send_keys(partition)

    async def flush(self) -> None:
        for partition in list(self._keys):
            await self._send_keys(partition)

    async def _send_keys(self, partition: int) -> None:
        keys = self._keys.pop(partition, [])
        if keys:
            await self._send(DeadlineBatch.of(keys, action="forget"), partition)
            self.sent += len(keys)


TimerRound = Callable[[], Awaitable[None]]


def timer(app: faust.App, seconds: float) -> Callable[[TimerRound], TimerRound]:
    """faust's ``app.timer(seconds)``, typed (faust declares it to return a bare ``Callable``)."""
    register: Callable[[TimerRound], TimerRound] = app.timer(seconds)
    return register


def round_survives_errors(timer_round: TimerRound) -> TimerRound:
    """An exception escaping a faust timer stops the whole worker; this logs it, and the timer's
    next round runs as usual."""

    @functools.wraps(timer_round)
    async def guarded() -> None:
        try:
            await timer_round()
        except Exception:
            log.exception("timer round %s failed; the next round runs as usual", timer_round.__name__)

    return guarded


def store_options(settings: Settings) -> dict[str, int] | None:
    """Memory limits for each partition's RocksDB store (None for another store), so that a worker
    holding every partition stays within ``agents_rocksdb_memory_mb``: half for the block cache,
    half for two write buffers.

    faust's defaults give every partition's store up to 3 x 64 MiB of write buffers and a 2 GiB
    block cache: a worker with six partitions could grow far past its pod's memory limit."""
    if not settings.agents_store.startswith("rocksdb:"):
        return None
    per_partition = settings.agents_rocksdb_memory_mb * 1024 * 1024 // settings.flow_partitions
    return {"write_buffer_size": per_partition // 4, "max_write_buffer_number": 2,
            "block_cache_size": per_partition // 2}


@dataclass(frozen=True)
class Received:
    """A message as the agent got it: what the tracker reads, and what forwarding it keeps."""

    incoming: Incoming
    timestamp: float
    headers: Any


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


def run_worker(settings: Settings) -> None:
    """Run the agents until SIGTERM/SIGINT (``sendpromptly agents``)."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), logging_config=logging_config(settings))
    # faust's terminal spinner, at WARNING and above, turns the root logger to DEBUG so that every
    # record spins it: every debug line of faust and aiokafka then costs a log record on the
    # stream's hot path. A service has no terminal to spin.
    worker.spinner = None
    worker.execute_from_commandline()
