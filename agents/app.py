"""The faust application: wires the flow tracker to its topics, its changelog-backed table and
the wall-clock deadline timer. ``create_app`` lists the parts; each lives in a module of its own."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import faust

from agents.deadline_timer import TIMER_SECONDS, DeadlineTimer, sweep_seconds
from agents.deadlines import DeadlineIndex
from agents.kafka_consumer import use_at_least_once_consumer
from agents.kafka_topics import declare_topics
from agents.lag import LAG_SECONDS, LagMeter
from agents.pages import add_pages
from agents.processing import Processor, Received
from agents.resources import FlowResources
from agents.results_ends import LOG_STARTS_SECONDS, ResultsEnds
from agents.watermark import ResultsWatermark
from common.config import Settings
from common.observability import logging_config

log = logging.getLogger(__name__)

FLOW_TABLE = "flow-state"


def create_app(settings: Settings) -> faust.App:
    """The agents' app: one agent applying every input message to the flow table, timers for the
    deadlines, retention and lag, and the web pages."""
    app = faust_app(settings)
    topics = declare_topics(app, settings.topic_prefix)
    # key_type=bytes stores the flow key as is (faust would JSON-encode it otherwise); values are JSON.
    flows = app.Table(FLOW_TABLE, partitions=settings.flow_partitions, key_type=bytes,
                      options=store_options(settings))
    index = DeadlineIndex()
    watermark = ResultsWatermark()
    results_ends = ResultsEnds(app, topics.names.results)
    lag = LagMeter(app, topics.names)
    resources = FlowResources(settings, topics.names)
    app.add_dependency(resources)  # the first, so the last to stop (see FlowResources)
    processor = Processor(topics, flows, index)
    deadlines = DeadlineTimer(flows=flows, index=index, watermark=watermark, results_ends=results_ends,
                              deadlines=topics.deadlines, partitions=settings.flow_partitions,
                              retention=settings.flow_retention)

    @app.agent(topics.inputs)
    async def track_flows(stream: faust.StreamT[bytes]) -> None:
        tracker = await resources.tracker()
        async for event in stream.events():
            record = event.message
            # Every flow a message concerns lives on its partition (a batch of due deadlines is sent
            # to the partition that owns its flows), so the table writes go to this partition's
            # store and changelog, as faust takes them from the current event.
            await processor.process(tracker, Received.of(event))
            lag.applied(record.topic, record.partition, record.timestamp)
            if record.topic == topics.names.results:
                watermark.applied(record.partition, record.offset,
                                  datetime.fromtimestamp(record.timestamp, UTC))

    app.on_rebalance_complete.connect(deadlines.rebuild_index)
    every(app, TIMER_SECONDS, deadlines.fire_deadlines)
    every(app, sweep_seconds(settings.flow_retention), deadlines.forget_closed_flows)
    every(app, LAG_SECONDS, lag.measure_lag)
    every(app, LOG_STARTS_SECONDS, results_ends.learn_log_starts)
    add_pages(app)
    return app


def faust_app(settings: Settings) -> faust.App:
    """The agents' faust app, its consumer held to at least once (``agents.kafka_consumer``)."""
    app = faust.App(
        f"{settings.topic_prefix}sendpromptly-agents",
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
    return app


TimerRound = Callable[[], Awaitable[None]]


def every(app: faust.App, seconds: float, timer_round: TimerRound) -> None:
    """Run ``timer_round`` every ``seconds`` while ``app`` runs."""
    # faust declares app.timer to return a bare Callable.
    register: Callable[[TimerRound], TimerRound] = app.timer(seconds)
    register(round_survives_errors(timer_round))


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


def run_worker(settings: Settings) -> None:
    """Run the agents until SIGTERM/SIGINT (``sendpromptly agents``)."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), logging_config=logging_config(settings))
    # faust's terminal spinner, at WARNING and above, turns the root logger to DEBUG so that every
    # record spins it: every debug line of faust and aiokafka then costs a log record on the
    # stream's hot path. A service has no terminal to spin.
    worker.spinner = None
    worker.execute_from_commandline()
