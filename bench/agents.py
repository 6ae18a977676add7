"""Agent benchmarks on the local broker, each against a baseline in the same run.

    .venv/bin/python -m bench.agents throughput [--flows 20000]
    .venv/bin/python -m bench.agents detection [--flows 10000] [--load-rate 300]

throughput: N receipts + N results are produced first; then (a) a raw aiokafka consumer that only
  deserializes them and (b) the agents (one worker: join, state machine, changelog table, audit
  events) each consume all 2N. Reported: messages/s of each and the ratio.
detection: N receipts whose deadlines are spread over 30 s and no results; reported: p50/p99/max of
  (incident opened − deadline), with no other traffic and with receipts+results of other flows
  flowing at --load-rate per second meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer

from sendpromptly.apikeys import generate_api_key
from store.db import open_pool
from store.projects import add_api_key, create_project
from tests.support.db import create_database, drop_database, migrated_template
from tests.support.kafka import read_topic_sync
from tests.support.processes import ManagedProcess, free_port
from tests.support.services import provide_services
from tests.support.stack import stack_env
from topics import INCIDENTS, RECEIPTS, RESULTS, IncidentEvent, Receipt, Result, decode, encode, flow_key
from topics.admin import delete_topics, ensure_topics

PARTITIONS = 6


@dataclass
class Bench:
    bootstrap: str
    database_url: str
    prefix: str
    project_id: str
    workdir: Path


@contextmanager
def bench_env() -> Iterator[Bench]:
    with provide_services() as services, TemporaryDirectory() as tmp:
        template = migrated_template(services.admin_database_url)
        name = f"sp_bench_{uuid.uuid4().hex[:8]}"
        url = create_database(services.admin_database_url, name, template=template)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        ensure_topics(services.kafka_bootstrap, prefix, PARTITIONS)
        try:
            yield Bench(services.kafka_bootstrap, url, prefix, asyncio.run(_project(url)), Path(tmp))
        finally:
            delete_topics(services.kafka_bootstrap, prefix)
            drop_database(services.admin_database_url, name)
            drop_database(services.admin_database_url, template)


async def _project(url: str) -> str:
    pool = await open_pool(url, max_size=1)
    async with pool.connection() as conn:
        project = await create_project(conn, name="bench")
        await add_api_key(conn, project.id, "bench", generate_api_key())
    await pool.close()
    return project.id


def producer(bench: Bench) -> Producer:
    return Producer({"bootstrap.servers": bench.bootstrap, "partitioner": "murmur2_random", "linger.ms": 20,
                     "acks": "all", "enable.idempotence": True})


def produce_receipts(bench: Bench, p: Producer, references: list[str], timeouts: list[int] | None = None) -> None:
    now = datetime.now(UTC)
    for n, reference in enumerate(references):
        receipt = Receipt(project_id=bench.project_id, idempotency_key=f"r-{reference}", reference=reference,
                          event_type="invoice.paid", effect_type="grant_access", received_at=now,
                          timeout_seconds=timeouts[n] if timeouts else 3600)
        _produce(p, RECEIPTS.name(bench.prefix), flow_key(bench.project_id, reference), encode(receipt))


def produce_results(bench: Bench, p: Producer, references: list[str]) -> None:
    now = datetime.now(UTC)
    for reference in references:
        result = Result(project_id=bench.project_id, idempotency_key=f"s-{reference}", reference=reference,
                        status="succeeded", received_at=now)
        _produce(p, RESULTS.name(bench.prefix), flow_key(bench.project_id, reference), encode(result))


def _produce(p: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            p.produce(topic, key=key, value=value)
            return
        except BufferError:
            p.poll(0.05)


def start_agents(bench: Bench) -> tuple[ManagedProcess, str]:
    port = free_port()
    env = stack_env(kafka_bootstrap=bench.bootstrap, database_url=bench.database_url, topic_prefix=bench.prefix,
                    workdir=bench.workdir, extra={"SENDPROMPTLY_AGENTS_WEB_PORT": str(port),
                                                  "SENDPROMPTLY_FLOW_PARTITIONS": str(PARTITIONS),
                                                  "SENDPROMPTLY_LOG_LEVEL": "WARNING"})
    agents = ManagedProcess("agents", ["agents"], env, bench.workdir / "agents.log")
    agents.start()
    return agents, f"http://127.0.0.1:{port}"


def processed(metrics_url: str) -> int:
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return int(sum(float(v) for v in re.findall(r'^sendpromptly_join_latency_seconds_count\{[^}]*\} (\S+)$', text, re.M)))


async def raw_consumer(bench: Bench, total: int) -> float:
    consumer = AIOKafkaConsumer(RECEIPTS.name(bench.prefix), RESULTS.name(bench.prefix),
                                bootstrap_servers=bench.bootstrap, group_id=f"raw-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batch.items():
                started = started or time.perf_counter()
                for record in records:
                    decode(Receipt if tp.topic.endswith("receipts.v1") else Result, record.value)
                    seen += 1
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    return total / (time.perf_counter() - started)


def throughput(flows: int) -> dict[str, object]:
    with bench_env() as bench:
        references = [f"inv_{n}" for n in range(flows)]
        p = producer(bench)
        produce_receipts(bench, p, references)
        produce_results(bench, p, references)
        assert p.flush(60) == 0
        raw = asyncio.run(raw_consumer(bench, 2 * flows))
        agents, url = start_agents(bench)
        try:
            first_at, done_at = None, None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if not agents.alive:
                    raise RuntimeError(f"agents exited: {agents.log_tail()}")
                try:
                    count = processed(url)
                except OSError:  # not serving yet
                    count = 0
                now = time.perf_counter()
                if count and first_at is None:
                    first_at = (now, count)
                if count >= 2 * flows:
                    done_at = now
                    break
                time.sleep(0.2)
            assert first_at and done_at, f"agents did not finish: {agents.log_tail()}"
            ours = (2 * flows - first_at[1]) / (done_at - first_at[0])
        finally:
            agents.stop()
    return {"flows": flows, "messages": 2 * flows, "raw_consumer_msgs_per_s": round(raw),
            "agents_msgs_per_s": round(ours), "ratio": round(ours / raw, 3)}


def _percentiles(values: list[float]) -> dict[str, float]:
    values.sort()
    return {"count": len(values), "p50_s": round(values[len(values) // 2], 3),
            "p99_s": round(values[int(len(values) * 0.99)], 3), "max_s": round(values[-1], 3)}


def detection(flows: int, load_rate: int) -> dict[str, object]:
    results: dict[str, object] = {"flows": flows}
    for label, rate in (("idle", 0), ("under_load", load_rate)):
        with bench_env() as bench:
            agents, url = start_agents(bench)
            try:
                agents.wait_ready(url + "/readyz", timeout=120)
                p = producer(bench)
                references = [f"due_{n}" for n in range(flows)]
                produce_receipts(bench, p, references, [random.randint(5, 35) for _ in references])
                assert p.flush(60) == 0
                end = time.monotonic() + 45
                n = 0
                while time.monotonic() < end:  # background traffic of other (applied) flows
                    if rate:
                        batch = [f"busy_{n + i}" for i in range(rate // 10)]
                        produce_receipts(bench, p, batch)
                        produce_results(bench, p, batch)
                        p.poll(0)
                        n += len(batch)
                    time.sleep(0.1)
                p.flush(60)
                events = [decode(IncidentEvent, v) for _, v in read_topic_sync(bench.bootstrap, INCIDENTS.name(bench.prefix))]
                lags = [(e.occurred_at - e.deadline).total_seconds() for e in events
                        if e.type == "opened" and e.deadline is not None]
                results[label] = {**_percentiles(lags), "background_flows": n}
            finally:
                agents.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("throughput", "detection"))
    parser.add_argument("--flows", type=int)
    parser.add_argument("--load-rate", type=int, default=300)
    args = parser.parse_args()
    if args.which == "throughput":
        print(json.dumps(throughput(args.flows or 20000), indent=2))
    else:
        print(json.dumps(detection(args.flows or 10000, args.load_rate), indent=2))


if __name__ == "__main__":
    main()
