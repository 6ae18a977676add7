"""The faust application: wires the flow tracker to its topics and its changelog-backed table."""

from __future__ import annotations

import logging

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.projects import ProjectDirectory
from agents.tracker import FlowTracker, Incoming
from sendpromptly.config import Settings
from sendpromptly.observability import DEAD_LETTERS
from store.db import open_pool
from topics import AUDIT, DEADLETTER, INCIDENTS, RECEIPTS, RESULTS, encode, flow_key, project_key
from topics.messages import AuditEvent

log = logging.getLogger(__name__)

FLOW_TABLE = "flow-state"


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
        consumer_auto_offset_reset="earliest",
        web_bind=settings.http_host,
        web_port=settings.agents_web_port,
        web_host=settings.http_host,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    signals = app.topic(RECEIPTS.name(prefix), RESULTS.name(prefix), **raw)
    audit = app.topic(AUDIT.name(prefix), **raw)
    incidents = app.topic(INCIDENTS.name(prefix), **raw)
    deadletter = app.topic(DEADLETTER.name(prefix), **raw)
    # Keys are raw bytes and values JSON: faust's defaults (key_serializer="raw", value_serializer="json").
    flows = app.Table(FLOW_TABLE, partitions=settings.flow_partitions)

    resources: dict[str, FlowTracker] = {}

    async def tracker() -> FlowTracker:
        if "tracker" not in resources:
            pool = await open_pool(settings.database_url, max_size=4)
            resources["tracker"] = FlowTracker(
                receipts_topic=RECEIPTS.name(prefix), results_topic=RESULTS.name(prefix),
                projects=ProjectDirectory(pool),
            )
        return resources["tracker"]

    @app.agent(signals)
    async def track_flows(stream: faust.StreamT) -> None:
        flow_tracker = await tracker()
        async for event in stream.events():
            message = Incoming(
                topic=event.message.topic, partition=event.message.partition, offset=event.message.offset,
                key=event.key, value=event.value,
            )
            outcome = await flow_tracker.handle(message, flows.get(event.key) if event.key else None)
            if outcome.dead_letter is not None:
                log.warning("dead-lettered %s[%d]@%d: %s", message.topic, message.partition,
                            message.offset, outcome.dead_letter.reason)
                DEAD_LETTERS.labels(FlowTracker.CONSUMER, outcome.dead_letter.reason.split(":", 1)[0]).inc()
                await (await deadletter.send(key=event.key, value=encode(outcome.dead_letter)))
                continue
            # Publish before storing: if the worker dies in between, the message is processed
            # again and the outputs, whose ids are deterministic, are published again harmlessly.
            for out in outcome.messages:
                if isinstance(out, AuditEvent):
                    await (await audit.send(key=project_key(out.project_id), value=encode(out)))
                else:
                    await (await incidents.send(key=flow_key(out.project_id, out.reference), value=encode(out)))
            if outcome.state is not None:
                flows[event.key] = outcome.state

    @app.page("/healthz")
    async def healthz(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        ready = app.tables.recovery.completed.is_set() and not app.rebalancing
        return web.json({"status": "ready" if ready else "starting"}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return app


def run_worker(settings: Settings) -> None:
    """Run the agents until SIGTERM/SIGINT (``sendpromptly agents``)."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower())
    worker.execute_from_commandline()
