"""Agent benchmarks on the local broker, each against a baseline in the same run.

    .venv/bin/python -m bench.agents throughput [--flows 20000]
    .venv/bin/python -m bench.agents detection [--flows 10000] [--load-rate 300]
    .venv/bin/python -m bench.agents scale [--flows 1000000]

throughput: N receipts + N results are produced first; then (a) a raw aiokafka consumer that only
  deserializes them, (b) an empty faust agent that only deserializes them (bench/faust_floor.py:
  the framework's own cost), (c) the same agent writing each message to a RocksDB table (the
  least one table write per message costs in faust) and (d) the agents (one worker: join, state
  machine, changelog table, audit events) each consume all 2N. Reported: messages/s of each and
  the ratios.
detection: N receipts whose deadlines are spread over 30 s and no results; reported: p50/p99/max of
  (incident opened - deadline), with no other traffic and with receipts+results of other flows
  flowing at --load-rate per second meanwhile. Two arrival patterns: burst (all N receipts at
  once, deadlines 5-35 s later: the worker must ingest the burst before the first deadlines) and
  spread (the receipts arrive evenly over the 30 s, each with a 5 s timeout).
scale: N receipts with a 1-day timeout (none expires) are produced first; then one worker ingests
  them all. Reported: ingest time and msgs/s; the worker's RSS (VmRSS, and its peak VmHWM, from
  /proc) when it applies its first receipt and once all N are pending, and the growth per pending
  flow; then, after kill -9 and a restart on the same RocksDB datadir, seconds from the new
  process's start until it serves HTTP, until /readyz answers 200, and until that and the
  pending-flows gauge back at N (the deadline index is rebuilt from the table after the rebalance:
  recovered_s), its RSS then, and the detection lag of one new receipt with a 2 s timeout (it still
  opens incidents). The worker runs as a static group member (SENDPROMPTLY_AGENTS_INSTANCE_ID, as
  the StatefulSet's pods do) and restarts at the same address, so the restart replaces the killed
  member at once; with dynamic membership the broker would keep the dead member for its 60 s
  session first. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer

from bench.processes import child_pid
from common.apikeys import generate_api_key
from harness.db import create_database, drop_database, migrated_template
from harness.kafka import read_topic_sync
from harness.processes import ManagedProcess, free_port
from harness.services import provide_services
from harness.stack import stack_env
from store.db import open_pool
from store.projects import add_api_key, create_project
from topics import INCIDENTS, RECEIPTS, RESULTS, IncidentEvent, Receipt, Result, decode, encode, flow_key
from topics.admin import delete_topics, ensure_topics
from topics.fields import ResultStatus

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


def produce_receipts(bench: Bench, p: Producer, references: list[str],
                     timeouts: list[int] | None = None) -> None:
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
                        status=ResultStatus.SUCCEEDED, received_at=now)
        _produce(p, RESULTS.name(bench.prefix), flow_key(bench.project_id, reference), encode(result))


def _produce(p: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            p.produce(topic, key=key, value=value)
            return
        except BufferError:
            p.poll(0.05)


def start_agents(bench: Bench, port: int | None = None) -> tuple[ManagedProcess, str]:
    """One worker; a restart passes the port it had, as a pod keeps its address (static membership
    hands the restarted worker its old assignment, which carries that address)."""
    port = port or free_port()
    env = stack_env(kafka_bootstrap=bench.bootstrap, database_url=bench.database_url,
                    topic_prefix=bench.prefix, workdir=bench.workdir,
                    extra={"SENDPROMPTLY_AGENTS_WEB_PORT": str(port),
                           "SENDPROMPTLY_FLOW_PARTITIONS": str(PARTITIONS),
                           # as the StatefulSet's pod name: static membership
                           "SENDPROMPTLY_AGENTS_INSTANCE_ID": "agents-0",
                           "SENDPROMPTLY_LOG_LEVEL": "WARNING"})
    agents = ManagedProcess("agents", ["agents"], env, bench.workdir / "agents.log")
    agents.start()
    return agents, f"http://127.0.0.1:{port}"


def metric(metrics_url: str, name: str) -> float:
    """The sum of every series of ``name`` on the agents' /metrics."""
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(rf'^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$', text, re.M))


def processed(metrics_url: str) -> int:
    return int(metric(metrics_url, "sendpromptly_join_latency_seconds_count"))


def pending(metrics_url: str) -> int:
    return int(metric(metrics_url, "sendpromptly_pending_flows"))


def serving(metrics_url: str) -> int:
    """1 once the worker's web server answers at all (an OSError until then)."""
    with urllib.request.urlopen(metrics_url + "/healthz", timeout=5) as response:
        return int(response.status == 200)


def ready(metrics_url: str) -> int:
    """1 when /readyz answers 200, else 0 (or an OSError while the web server is not up)."""
    try:
        with urllib.request.urlopen(metrics_url + "/readyz", timeout=5) as response:
            return int(response.status == 200)
    except urllib.error.HTTPError:
        return 0


async def raw_consumer(bench: Bench, total: int) -> float:
    consumer = AIOKafkaConsumer(RECEIPTS.name(bench.prefix), RESULTS.name(bench.prefix),
                                bootstrap_servers=bench.bootstrap, group_id=f"raw-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen, started = 0, 0.0  # started: when the first batch arrived
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
        floor = faust_floor(bench, 2 * flows)
        floor_table = faust_floor(bench, 2 * flows, with_table=True)
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
            "faust_floor_msgs_per_s": round(floor), "faust_floor_table_msgs_per_s": round(floor_table),
            "agents_msgs_per_s": round(ours), "ratio": round(ours / raw, 3),
            "faust_floor_ratio": round(floor / raw, 3), "floor_table_of_floor": round(floor_table / floor, 3),
            "agents_of_floor": round(ours / floor, 3), "agents_of_floor_table": round(ours / floor_table, 3)}


def faust_floor(bench: Bench, total: int, *, with_table: bool = False) -> float:
    """Messages/s of an empty faust agent over the same messages (bench/faust_floor.py); with
    ``with_table``, one that also writes each message to a RocksDB table."""
    name = "faust-floor-table" if with_table else "faust-floor"
    env = {**os.environ, "FLOOR_PREFIX": bench.prefix, "FLOOR_BOOTSTRAP": bench.bootstrap,
           "FLOOR_MESSAGES": str(total), "FLOOR_DATADIR": str(bench.workdir / name),
           "FLOOR_PARTITIONS": str(PARTITIONS), "FLOOR_TABLE": "1" if with_table else "0"}
    done = subprocess.run([sys.executable, "-m", "bench.faust_floor"], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    figure = re.search(r"FLOOR (\d+)", done.stdout + done.stderr)  # faust logs what it prints
    if figure is None:
        raise RuntimeError("the faust floor agent did not report: "
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(figure.group(1))


def _percentiles(values: list[float]) -> dict[str, float]:
    values.sort()
    return {"count": len(values), "p50_s": round(values[len(values) // 2], 3),
            "p99_s": round(values[int(len(values) * 0.99)], 3), "max_s": round(values[-1], 3)}


SPREAD_SECONDS = 30
TICK_SECONDS = 0.1


def detection(flows: int, load_rate: int) -> dict[str, object]:
    """Each arrival pattern with no other traffic, then with ``load_rate`` other flows per second."""
    results: dict[str, object] = {"flows": flows}
    for arrival in ("burst", "spread"):
        for label, rate in (("idle", 0), ("under_load", load_rate)):
            results[f"{arrival}_{label}"] = _detection_run(flows, rate, arrival)
    return results


def _detection_run(flows: int, rate: int, arrival: str) -> dict[str, object]:
    """burst: all N receipts at once, deadlines 5-35 s later. spread: the N receipts arrive evenly
    over 30 s, each with a 5 s timeout (deadlines 5-35 s from the start, as in burst)."""
    with bench_env() as bench:
        agents, url = start_agents(bench)
        try:
            agents.wait_ready(url + "/readyz", timeout=120)
            p = producer(bench)
            references = [f"due_{n}" for n in range(flows)]
            if arrival == "burst":
                produce_receipts(bench, p, references,
                                 [random.randint(5, 5 + SPREAD_SECONDS) for _ in references])
                references = []
            per_tick = flows * TICK_SECONDS / SPREAD_SECONDS
            start, step, background = time.monotonic(), 0, 0
            while time.monotonic() < start + SPREAD_SECONDS + 15:
                step += 1
                count = int(step * per_tick) - int((step - 1) * per_tick)
                due, references = references[:count], references[count:]
                produce_receipts(bench, p, due, [5] * len(due))
                if rate:  # other flows, applied at once: load on the same partitions
                    batch = [f"busy_{background + i}" for i in range(int(rate * TICK_SECONDS))]
                    produce_receipts(bench, p, batch)
                    produce_results(bench, p, batch)
                    background += len(batch)
                p.poll(0)
                time.sleep(max(0.0, start + step * TICK_SECONDS - time.monotonic()))
            assert p.flush(60) == 0
            events = [decode(IncidentEvent, v)
                      for _, v in read_topic_sync(bench.bootstrap, INCIDENTS.name(bench.prefix))]
            lags = [(e.occurred_at - e.deadline).total_seconds() for e in events
                    if e.type == "opened" and e.deadline is not None]
            return {**_percentiles(lags), "background_flows": background}
        finally:
            agents.stop()


HELD_TIMEOUT_SECONDS = 24 * 3600  # no held flow expires during the run
PROBE_TIMEOUT_SECONDS = 2
AGENTS_COMMAND = "sendpromptly agents"


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` now (VmRSS) and at its peak (VmHWM), in MiB."""
    status = (Path("/proc") / str(pid) / "status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return {f"{name.lower()}_mib": round(int(fields[name].split()[0]) / 1024, 1)
            for name in ("VmRSS", "VmHWM")}


def wait_until(agents: ManagedProcess, what: str, probe: Callable[[], int], target: int,
               timeout: float) -> float:
    """Poll ``probe`` until it reaches ``target``; logs progress to stderr every ~10 s, fails if the
    agents die or ``timeout`` seconds pass. Returns the monotonic time it got there."""
    started = time.monotonic()
    logged = started
    value = 0
    while (now := time.monotonic()) < started + timeout:
        if not agents.alive:
            raise RuntimeError(f"agents exited while waiting for {what}:\n{agents.log_tail()}")
        try:
            value = probe()
        except OSError:  # not serving yet
            value = 0
        if value >= target:
            return now
        if now - logged >= 10:
            print(f"scale: {what} {value}/{target} after {now - started:.0f} s", file=sys.stderr, flush=True)
            logged = now
        time.sleep(0.2)
    raise RuntimeError(f"{what} at {value}/{target} after {timeout:.0f} s:\n{agents.log_tail()}")


def produce_held(bench: Bench, flows: int) -> float:
    """N receipts that stay pending all run; returns the seconds producing them took."""
    started = time.monotonic()
    p = producer(bench)
    produce_receipts(bench, p, [f"held_{n}" for n in range(flows)], [HELD_TIMEOUT_SECONDS] * flows)
    assert p.flush(300) == 0, "receipts not all delivered"
    return time.monotonic() - started


def ingest(agents: ManagedProcess, url: str, flows: int, started: float) -> dict[str, object]:
    """Wait until the worker started at ``started`` has applied all N receipts and holds them pending."""
    timeout = 600 + flows / 100  # ten times the time at ~1 000 msg/s, at least 10 min
    first = wait_until(agents, "first receipt applied", lambda: processed(url), 1, timeout)
    base = memory_mib(child_pid(AGENTS_COMMAND))
    done = wait_until(agents, "receipts applied", lambda: processed(url), flows, timeout)
    wait_until(agents, "pending flows", lambda: pending(url), flows, 60)
    held = memory_mib(child_pid(AGENTS_COMMAND))
    return {"ingest_s": round(done - started, 1), "msgs_per_s": round(flows / (done - first)),
            "pending_flows": pending(url), "rss_at_first_receipt": base, "rss_all_pending": held,
            "rss_kib_per_pending_flow": round((held["vmrss_mib"] - base["vmrss_mib"]) * 1024 / flows, 3)}


def recover(agents: ManagedProcess, url: str, flows: int, started: float) -> dict[str, object]:
    """Wait until the worker restarted at ``started`` is ready and watches all N pending flows again;
    seconds from ``started`` until it serves HTTP, answers /readyz 200 and has both (recovered)."""
    timeout = 600 + flows / 100
    serving_at = wait_until(agents, "/healthz", lambda: serving(url), 1, timeout)
    ready_at = wait_until(agents, "/readyz", lambda: ready(url), 1, timeout)
    restored_at = wait_until(agents, "pending flows after restart", lambda: pending(url), flows, timeout)
    times = {"serving_s": serving_at, "ready_s": ready_at, "recovered_s": max(ready_at, restored_at)}
    return {**{name: round(at - started, 1) for name, at in times.items()},
            "pending_flows": pending(url), "rss": memory_mib(child_pid(AGENTS_COMMAND))}


def opened_incident(bench: Bench, reference: str) -> IncidentEvent | None:
    messages = read_topic_sync(bench.bootstrap, INCIDENTS.name(bench.prefix))
    events = (decode(IncidentEvent, v) for _, v in messages)
    return next((e for e in events if e.type == "opened" and e.reference == reference), None)


def probe_detection(bench: Bench, agents: ManagedProcess) -> dict[str, float]:
    """One new receipt with a short timeout: how long until its incident opens."""
    reference = f"probe_{uuid.uuid4().hex[:8]}"
    p = producer(bench)
    sent = time.monotonic()
    produce_receipts(bench, p, [reference], [PROBE_TIMEOUT_SECONDS])
    assert p.flush(30) == 0, "probe receipt not delivered"
    seen = wait_until(agents, "probe incident", lambda: int(opened_incident(bench, reference) is not None),
                      1, 120)
    event = opened_incident(bench, reference)
    assert event is not None and event.deadline is not None
    return {"timeout_s": PROBE_TIMEOUT_SECONDS, "seen_after_produce_s": round(seen - sent, 2),
            "detection_lag_s": round((event.occurred_at - event.deadline).total_seconds(), 3)}


def scale(flows: int) -> dict[str, object]:
    with bench_env() as bench:
        figures: dict[str, object] = {"flows": flows, "produce_s": round(produce_held(bench, flows), 1)}
        started = time.monotonic()
        agents, url = start_agents(bench)
        try:
            figures["ingest"] = ingest(agents, url, flows, started)
            agents.kill()
            started = time.monotonic()
            # Same workdir, so the same RocksDB datadir; same port, as a restarted pod keeps its address.
            agents, url = start_agents(bench, urlsplit(url).port)
            figures["after_kill_9"] = recover(agents, url, flows, started)
            figures["probe"] = probe_detection(bench, agents)
        finally:
            agents.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("throughput", "detection", "scale"))
    parser.add_argument("--flows", type=int)
    parser.add_argument("--load-rate", type=int, default=300)
    args = parser.parse_args()
    if args.which == "throughput":
        print(json.dumps(throughput(args.flows or 20000), indent=2))
    elif args.which == "scale":
        print(json.dumps(scale(args.flows or 1_000_000), indent=2))
    else:
        print(json.dumps(detection(args.flows or 10000, args.load_rate), indent=2))


if __name__ == "__main__":
    main()
