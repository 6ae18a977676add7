"""The whole pipeline under a rising load: how fast can signals arrive while every consumer keeps up?

    .venv/bin/python -m bench.pipeline [--start 100] [--step 50] [--step-seconds 20] [--agents-flows 20000]

One run, on this machine:

1. The agents' standalone rate (``bench/agents.py throughput``: one worker consuming receipts and
   results produced beforehand), the yardstick.
2. The whole local stack (gateway, agents, every sink; one project with no alert destination) on
   the test Kafka broker, fresh topics of ``PARTITIONS`` partitions, and a scratch PostgreSQL
   cluster of its own with ``pg_stat_statements`` (``bench/postgres_per_flow.py``'s). Flows go in
   through batch ingest (``IngestClient.send_batch``, in threads), every ``TICK_SECONDS``: the
   receipts of the new flows, and the results of the flows whose receipts went one tick before
   (80 % ``succeeded``, 10 % ``failed``, 10 % of the flows get no result and time out after
   ``TIMEOUT_SECONDS``). The offered rate in flows/s starts at ``--start`` and rises by ``--step``
   every ``--step-seconds``.

Per step: the signals accepted; each sink group's lag in seconds, about every second, from the
broker (``SinkLag``: the age of the first record past its committed offset); the agents' lag, as
their own histogram of it (``sendpromptly_join_latency_seconds``, from the gateway's receipt of a
signal to its applying; the agents commit only every few seconds, so their committed offsets would
overstate it); the read-back latency of a sample of flows (``GET /api/v1/flows/{ref}`` polled
until it shows the flow's final status: ``applied``, or ``incident`` for a failed or missing
result; measured from the result's acceptance, or from the deadline of a flow with no result);
and the CPU each process used (/proc), in cores and per flow, beside the whole machine's (anyone's
work counts there). A step is sustained when at least 95 % of what was offered was accepted, no
sink group's lag reached 2 s nor did any signal take the agents over 2.5 s (the histogram's bound
next above 2 s), and every sampled flow read back within 2 s. The ramp stops at the first step
that is not; reported: the highest sustained rate, in flows/s and in signals/s (what the agents
consume) as a ratio of the agents' standalone rate, and at the first failing step which groups
fell behind and how busy each process was.

Then, once every group has caught up: PostgreSQL statements, transactions and rows written per
accepted flow over the whole ramp, with the stack's idle cost over the same time taken off (it is
measured for ``IDLE_SECONDS`` before the ramp).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
import psycopg
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.agents import throughput
from bench.ingest import Scrape, scrape
from bench.postgres_per_flow import STATS_FLUSH_SECONDS, counters, delta, postgres_with_statements, reset
from bench.processes import child_pid, cpu_seconds, machine_cpu_seconds, service_cpu_seconds
from common.apikeys import generate_api_key
from harness.db import create_database, drop_database, migrated_template
from harness.services import provide_services
from harness.stack import SINK_NAMES, Stack, build_stack, stack_env
from sendpromptly.client import BATCH_MAX_ITEMS, NO_RETRY, IngestClient, Kind
from store.db import open_pool
from store.projects import add_api_key, create_project
from topics.admin import delete_topics, ensure_topics

PARTITIONS = 6  # as bench/agents.py's standalone worker gets
TICK_SECONDS = 0.5
TIMEOUT_SECONDS = 5  # every receipt's; results follow one tick later, well before it
READ_BACK_LIMIT_S = 2.0
LAG_LIMIT_S = 2.0
ACCEPTED_SHARE = 0.95
SAMPLES_PER_SECOND = 4
POLL_SECONDS = 0.2
GIVE_UP_S = 10.0  # a sample not read back by then counts as this late
IDLE_SECONDS = 10
DRAIN_TIMEOUT_S = 300
SENDERS = 4  # threads posting batches
JOIN_LATENCY = "sendpromptly_join_latency_seconds"
# Every process's CPU time, ours and anyone else's (/proc/stat): how busy the machine was.
MACHINE = "machine"


@dataclass
class Step:
    rate: int
    started: float = 0.0
    ended: float = 0.0
    offered_flows: int = 0
    accepted: int = 0  # signals
    offered: int = 0  # signals
    lags: list[dict[str, float]] = field(default_factory=list)  # each sink's, about every second
    joins_before: Scrape = field(default_factory=dict)
    joins_after: Scrape = field(default_factory=dict)
    read_back: dict[str, list[float]] = field(default_factory=dict)  # by kind of flow
    samples: list[tuple[str, asyncio.Future[float]]] = field(default_factory=list)
    cpu_before: dict[str, float] = field(default_factory=dict)
    cpu_after: dict[str, float] = field(default_factory=dict)

    def cores(self) -> dict[str, float]:
        wall = self.ended - self.started
        return {name: round((self.cpu_after[name] - self.cpu_before[name]) / wall, 2)
                for name in self.cpu_after}

    def cpu_ms_per_flow(self) -> dict[str, float]:
        """CPU each process spent per flow offered in the step, and all of them together: what
        bounds the rate on a machine of so many cores, however the work is spread."""
        spent = {name: 1000 * (self.cpu_after[name] - self.cpu_before[name]) / self.offered_flows
                 for name in self.cpu_after if name != MACHINE}
        return {**{name: round(ms, 2) for name, ms in spent.items()}, "total": round(sum(spent.values()), 2)}

    def max_lag(self) -> dict[str, float]:
        groups = {group for sample in self.lags for group in sample}
        return {group: round(max(sample.get(group, 0.0) for sample in self.lags), 2)
                for group in sorted(groups)}

    def agents_join(self) -> dict[str, float]:
        """The agents' join latency over the step (gateway's receipt of a signal to its applying):
        how many, and the share within 1 s and within 2.5 s (the histogram has no 2 s bound)."""
        def upto(scrape: Scrape, bound: float) -> float:
            return sum(value for (name, labels), value in scrape.items()
                       if name == f"{JOIN_LATENCY}_bucket" and float(dict(labels)["le"]) == bound)
        count = upto(self.joins_after, float("inf")) - upto(self.joins_before, float("inf"))
        return {"count": count, **{f"within_{bound:g}s": round(
            (upto(self.joins_after, bound) - upto(self.joins_before, bound)) / count, 4) if count else 1.0
            for bound in (1.0, 2.5)}}

    def verdict(self) -> dict[str, Any]:
        read_back = sorted(latency for latencies in self.read_back.values() for latency in latencies)
        lags = self.max_lag()
        joins = self.agents_join()
        late_groups = [group for group, lag in lags.items() if lag >= LAG_LIMIT_S]
        if joins["within_2.5s"] < 1.0:
            late_groups.append("agents")
        accepted_share = self.accepted / self.offered if self.offered else 1.0
        slow_reads = sum(1 for latency in read_back if latency > READ_BACK_LIMIT_S)
        return {
            "rate_flows_per_s": self.rate,
            "signals_per_s": round(self.accepted / (self.ended - self.started)),
            "accepted_share": round(accepted_share, 3),
            "max_lag_s": lags,
            "agents_join_latency": joins,
            "read_back_s": {"count": len(read_back),
                            "p50": round(read_back[len(read_back) // 2], 3) if read_back else None,
                            "max": round(read_back[-1], 3) if read_back else None,
                            "over_2s": slow_reads,
                            "max_by_kind": {kind: round(max(latencies), 3)
                                            for kind, latencies in sorted(self.read_back.items())}},
            "cpu_cores": self.cores(),
            "cpu_ms_per_flow": self.cpu_ms_per_flow(),
            "sustained": accepted_share >= ACCEPTED_SHARE and not late_groups and not slow_reads,
            "late_groups": late_groups,
        }


@dataclass
class Pipeline:
    stack: Stack
    api_key: str
    database_url: str
    sink_lag: SinkLag
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    next_flow: int = 0
    senders: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(SENDERS))

    def process_pids(self) -> dict[str, int]:
        names = ["gateway", "agents", *(f"sink {name}" for name in self.stack.sinks)]
        return {name.replace("sink ", "sink-"): child_pid(f"sendpromptly {name}") for name in names}

    def cpu(self, pids: dict[str, int]) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, **service_cpu_seconds(),
                "load-generator": own.ru_utime + own.ru_stime, MACHINE: machine_cpu_seconds()}

    def metrics_urls(self) -> list[str]:
        return [url + "/metrics" for url in (self.stack.agents_url, *self.stack.sink_urls.values())]


def kind_of(flow: int) -> str:
    """80 % succeeded, 10 % failed, 10 % missing (no result at all)."""
    return {0: "missing", 1: "failed"}.get(flow % 10, "succeeded")


EXPECTED = {"succeeded": "applied", "failed": "incident", "missing": "incident"}


def post(client: IngestClient, kind: Kind, items: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """Post ``items`` in batches; when the last answer came (wall clock) and every item's result."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(items), BATCH_MAX_ITEMS):
        results += client.send_batch(kind, items[start:start + BATCH_MAX_ITEMS]).doc["items"]
    return time.time(), results


class SinkLag:
    """Each sink group's lag in seconds, from the broker: for every partition with records past the
    group's committed offset (a sink commits after each batch), the age of the first of them. The
    processes' own gauges tell how far behind in messages, and how old the newest applied message
    is, which on a partition whose messages come seconds apart counts the gap too."""

    def __init__(self, bootstrap: str, prefix: str, sinks: Iterable[str]):
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._peek = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}bench-peek",
                               "enable.auto.commit": False, "max.partition.fetch.bytes": 1024})
        self._groups = {f"{prefix}sendpromptly-sink-{name}": f"sink-{name}" for name in sinks}

    def read(self) -> dict[str, float]:
        behind: dict[tuple[str, int], tuple[int, list[str]]] = {}  # first record to go, and whose
        lags = dict.fromkeys(self._groups.values(), 0.0)
        for group, name in self._groups.items():
            answer = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
            for tp in answer[group].result().topic_partitions:
                _, end = self._peek.get_watermark_offsets(tp, timeout=5, cached=False)
                start = max(tp.offset, 0)
                if start < end:
                    behind.setdefault((tp.topic, tp.partition), (start, []))[1].append(name)
        if not behind:
            return lags
        self._peek.assign([TopicPartition(topic, partition, offset)
                           for (topic, partition), (offset, _) in behind.items()])
        now, waiting = time.time(), set(behind)
        give_up = time.monotonic() + 2
        while waiting and time.monotonic() < give_up:
            for message in self._peek.consume(len(waiting), timeout=0.5):
                where = (message.topic(), message.partition())
                if message.error() is None and where in waiting:
                    waiting.discard(where)
                    age = max(0.0, now - message.timestamp()[1] / 1000)
                    for name in behind[where][1]:
                        lags[name] = max(lags[name], age)
        return lags


async def read_back(session: aiohttp.ClientSession, pipeline: Pipeline, reference: str, expected: str,
                    since: float) -> float:
    """Seconds from ``since`` (wall clock) until the flow reads back with status ``expected``."""
    await asyncio.sleep(max(0.0, since - time.time()))
    url = f"{pipeline.stack.base_url}/api/v1/flows/{reference}"
    headers = {"Authorization": f"Bearer {pipeline.api_key}"}
    while (waited := time.time() - since) < GIVE_UP_S:
        async with session.get(url, headers=headers) as answer:
            if answer.status == 200 and (await answer.json())["status"] == expected:
                return waited
        await asyncio.sleep(POLL_SECONDS)
    return GIVE_UP_S


async def run_step(session: aiohttp.ClientSession, pipeline: Pipeline, client: IngestClient, step: Step,
                   seconds: float, pids: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    step.joins_before = await asyncio.to_thread(scrape, pipeline.stack.agents_url + "/metrics")
    step.cpu_before, step.started = pipeline.cpu(pids), time.monotonic()
    sampling = asyncio.ensure_future(_sample_lags(step, pipeline.sink_lag))
    sends: list[asyncio.Future[None]] = []
    previous: list[int] = []
    owed = 0.0
    ticks = round(seconds / TICK_SECONDS)
    for tick in range(ticks + 1):
        owed += step.rate * TICK_SECONDS if tick < ticks else 0.0
        flows = list(range(pipeline.next_flow, pipeline.next_flow + int(owed)))
        owed -= len(flows)
        pipeline.next_flow += len(flows)
        step.offered_flows += len(flows)
        sends.append(asyncio.ensure_future(
            _send_tick(loop, session, pipeline, client, step, flows, previous)))
        previous = flows
        await asyncio.sleep(max(0.0, step.started + (tick + 1) * TICK_SECONDS - time.monotonic()))
    await asyncio.gather(*sends)
    step.ended, step.cpu_after = time.monotonic(), pipeline.cpu(pids)
    step.joins_after = await asyncio.to_thread(scrape, pipeline.stack.agents_url + "/metrics")
    sampling.cancel()


async def _sample_lags(step: Step, lag: SinkLag) -> None:
    while True:
        step.lags.append(await asyncio.to_thread(lag.read))
        await asyncio.sleep(1)


async def _send_tick(loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession, pipeline: Pipeline,
                     client: IngestClient, step: Step, receipts: list[int], results: list[int]) -> None:
    ref = f"{pipeline.run_id}_{{}}".format
    receipt_items = [{"idempotency_key": f"r-{ref(n)}", "reference": ref(n), "event_type": "invoice.paid",
                      "effect_type": "grant_access", "timeout_seconds": TIMEOUT_SECONDS} for n in receipts]
    result_flows = [n for n in results if kind_of(n) != "missing"]
    result_items = [{"idempotency_key": f"s-{ref(n)}", "reference": ref(n), "status": kind_of(n)}
                    for n in result_flows]
    step.offered += len(receipt_items) + len(result_items)
    batches: list[tuple[Kind, list[dict[str, Any]]]] = [("receipt", receipt_items), ("result", result_items)]
    posts = [loop.run_in_executor(pipeline.senders, post, client, kind, items)
             for kind, items in batches if items]
    answers = await asyncio.gather(*posts)
    # Each flow's last signal (its result, or the receipt of one that gets none) is sampled with
    # the same chance: SAMPLES_PER_SECOND flows a second whatever the rate, of every kind alike.
    chance = SAMPLES_PER_SECOND * TICK_SECONDS / max(len(receipts), len(results), 1)
    for answered_at, items in answers:
        step.accepted += sum(1 for item in items if item["outcome"] == "accepted")
        for item in items:
            kind = kind_of(int(item["reference"].rsplit("_", 1)[1]))
            is_receipt = "timeout_seconds" in item
            final = is_receipt == (kind == "missing")
            if item["outcome"] != "accepted" or not final or random.random() >= chance:
                continue
            # A result reads back from its acceptance, a flow without one from its deadline.
            since = (datetime.fromisoformat(item["received_at"]).timestamp() + item["timeout_seconds"]
                     if is_receipt else answered_at)
            step.samples.append((kind, asyncio.ensure_future(
                read_back(session, pipeline, item["reference"], EXPECTED[kind], since))))


async def wait_drained(session: aiohttp.ClientSession, pipeline: Pipeline) -> float:
    """Seconds until every group has no message to go, twice in a row."""
    started, clear = time.monotonic(), 0
    pattern = re.compile(r'^sendpromptly_consumer_lag\{[^}]*\} (\S+)$', re.M)
    while time.monotonic() - started < DRAIN_TIMEOUT_S:
        behind = 0.0
        for url in pipeline.metrics_urls():
            async with session.get(url) as answer:
                behind += sum(float(v) for v in pattern.findall(await answer.text()))
        clear = clear + 1 if behind == 0 else 0
        if clear >= 2:
            return time.monotonic() - started
        await asyncio.sleep(1)
    raise RuntimeError(f"the pipeline did not catch up within {DRAIN_TIMEOUT_S} s")


async def ramp(pipeline: Pipeline, args: argparse.Namespace) -> dict[str, Any]:
    client = IngestClient(pipeline.stack.base_url, pipeline.api_key, retry=NO_RETRY)
    pids = pipeline.process_pids()
    verdicts: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.to_thread(reset, pipeline.database_url)
        await asyncio.sleep(IDLE_SECONDS + STATS_FLUSH_SECONDS)
        idle = await asyncio.to_thread(counters, pipeline.database_url)
        await asyncio.to_thread(reset, pipeline.database_url)
        started = time.monotonic()
        steps: list[Step] = []
        rate = args.start
        while rate <= args.max_rate:
            step = Step(rate)
            await run_step(session, pipeline, client, step, args.step_seconds, pids)
            steps.append(step)
            print(f"pipeline: {rate} flows/s offered, {step.accepted} of {step.offered} signals accepted, "
                  f"lag {step.max_lag()}", file=sys.stderr, flush=True)
            if len(steps) >= 2 and not (await _judge(steps[-2], verdicts))["sustained"]:
                break
            rate += args.step
        for step in steps[len(verdicts):]:
            await _judge(step, verdicts)
        drained_s = await wait_drained(session, pipeline)
        await asyncio.sleep(STATS_FLUSH_SECONDS)
        elapsed = time.monotonic() - started
        loaded = await asyncio.to_thread(counters, pipeline.database_url)
    pipeline.senders.shutdown()
    sustained = list(_until_first_failure(verdicts))
    failing = next((v for v in verdicts if not v["sustained"]), None)
    return {"steps": verdicts, "highest_sustained": sustained[-1] if sustained else None,
            "first_failing": failing, "drained_after_s": round(drained_s, 1),
            "postgres": per_flow(loaded, idle, elapsed, pipeline.next_flow)}


async def _judge(step: Step, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    for kind, sample in step.samples:
        step.read_back.setdefault(kind, []).append(await sample)  # each gives up after GIVE_UP_S
    verdict = step.verdict()
    verdicts.append(verdict)
    print(f"pipeline: {json.dumps(verdict)}", file=sys.stderr, flush=True)
    return verdict


def _until_first_failure(verdicts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for verdict in verdicts:
        if not verdict["sustained"]:
            return
        yield verdict


def per_flow(loaded: dict[str, Any], idle: dict[str, Any], elapsed: float, flows: int) -> dict[str, Any]:
    """PostgreSQL's work per accepted flow over the ramp, the idle cost of as long taken off."""
    scale = elapsed / (IDLE_SECONDS + STATS_FLUSH_SECONDS)
    idle_scaled = {
        "database": {k: v * scale for k, v in idle["database"].items()},
        "tables": {t: tuple(x * scale for x in v) for t, v in idle["tables"].items()},
        "statements": {q: (c * scale, r * scale) for q, (c, r) in idle["statements"].items()},
    }
    net = delta(loaded, idle_scaled)
    top = sorted(net["statements"].items(), key=lambda item: -item[1][0])[:12]
    written = sum(net["database"][k] for k in ("tup_inserted", "tup_updated", "tup_deleted"))
    return {
        "flows": flows,
        "statements_per_flow": round(sum(c for c, _ in net["statements"].values()) / flows, 2),
        "transactions_per_flow": round(net["database"]["xact_commit"] / flows, 2),
        "rows_written_per_flow": round(written / flows, 2),
        "per_table_ins_upd_del_per_flow": {table: [round(x / flows, 2) for x in counts]
                                           for table, counts in sorted(net["tables"].items())
                                           if any(round(x / flows, 2) for x in counts)},
        "top_statements_calls_per_flow": [(round(calls / flows, 2), " ".join(query.split())[:100])
                                          for query, (calls, _) in top],
    }


async def make_project(url: str) -> str:
    pool = await open_pool(url, max_size=1)
    try:
        async with pool.connection() as conn:
            project = await create_project(conn, name="bench-pipeline")
            key = generate_api_key()
            await add_api_key(conn, project.id, "bench", key)
    finally:
        await pool.close()
    return key.plaintext


@contextmanager
def whole_stack(kafka_bootstrap: str, admin_url: str, workdir: Path) -> Iterator[tuple[Stack, str]]:
    """Every process on fresh topics and a fresh database of the statements-counting cluster."""
    template = migrated_template(admin_url)
    name = f"sp_pipeline_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name, template=template)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    prefix = f"pipe{uuid.uuid4().hex[:6]}."
    ensure_topics(kafka_bootstrap, prefix, PARTITIONS)
    env = stack_env(kafka_bootstrap=kafka_bootstrap, database_url=url, topic_prefix=prefix, workdir=workdir,
                    extra={"SENDPROMPTLY_FLOW_PARTITIONS": str(PARTITIONS),
                           "SENDPROMPTLY_LOG_LEVEL": "WARNING"})
    stack = build_stack(env, workdir, SINK_NAMES)
    try:
        stack.start()
        yield stack, url
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.stop()
        delete_topics(kafka_bootstrap, prefix)
        drop_database(admin_url, name)
        drop_database(admin_url, template)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=100, help="flows/s of the first step")
    parser.add_argument("--step", type=int, default=50, help="flows/s added every step")
    parser.add_argument("--step-seconds", type=float, default=20)
    parser.add_argument("--max-rate", type=int, default=5000)
    parser.add_argument("--agents-flows", type=int, default=20000,
                        help="flows of the agents' standalone throughput run (0: skip it)")
    args = parser.parse_args()

    standalone = throughput(args.agents_flows) if args.agents_flows else None
    admin_url = postgres_with_statements()
    with provide_services() as services, TemporaryDirectory() as tmp, \
            whole_stack(services.kafka_bootstrap, admin_url, Path(tmp)) as (stack, url):
        lag = SinkLag(services.kafka_bootstrap, stack.env["SENDPROMPTLY_TOPIC_PREFIX"], stack.sinks)
        pipeline = Pipeline(stack, asyncio.run(make_project(url)), url, lag)
        figures = asyncio.run(ramp(pipeline, args))
    best = figures["highest_sustained"]
    agents_rate = standalone["agents_msgs_per_s"] if standalone else None
    cpu = best and best["cpu_ms_per_flow"]["total"]
    report = {
        "agents_standalone": standalone,
        # The rate at which the whole stack would use every core of this machine, at the CPU per
        # flow it spent at its highest sustained rate.
        "cpu_bound_flows_per_s": cpu and round(1000 * (os.cpu_count() or 1) / cpu),
        "highest_sustained_flows_per_s": best and best["rate_flows_per_s"],
        "highest_sustained_signals_per_s": best and best["signals_per_s"],
        "ratio_to_agents_standalone": (round(best["signals_per_s"] / agents_rate, 3)
                                       if best and agents_rate else None),
        **figures,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
