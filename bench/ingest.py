"""Ingest benchmark: our gateway (auth + validation + idempotency + Kafka ack) against a bare aiohttp
handler that only parses JSON, in one run, on this machine.

    make bench-tools    # wrk and py-spy, once
    .venv/bin/python -m bench.ingest [--duration 15] [--connections 32] [--floors] [--replicas N]

1. Peak: wrk (one thread, N connections, a fresh Idempotency-Key per request) against each server,
   and against the gateway's batch endpoint (``--batch-items`` receipts per request),
   with the CPU time per request of the server, of Kafka and PostgreSQL, and of the whole machine.
   ``--floors`` adds the durability floors (``bench/ingest_floor.py``): a handler that only gets
   the Kafka ack (and one idempotency claim), to show what no gateway code can go below here.
2. Latency at half of our peak: ``bench/open_loop.py`` sends at a fixed rate and measures from
   each request's scheduled time, so a stall shows up in the tail instead of slowing the sender
   down (no coordinated omission). The gateway's own histograms over the same requests are
   reported beside it (``server_side``: the share answered within each bucket bound).

Kafka and PostgreSQL come from the same place as the tests' (environment, testcontainers, or the
local scripts); the gateway runs as the real ``sendpromptly gateway`` process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit

import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.open_loop import http_post, open_loop
from bench.processes import child_pids, cpu_seconds, machine_cpu_seconds, service_cpu_seconds
from bench.profile import start_recording, summary
from common.apikeys import generate_api_key
from harness.db import create_database, drop_database, migrated_template
from harness.processes import ManagedProcess, free_port
from harness.services import provide_services
from harness.stack import stack_env
from store.db import open_pool
from store.projects import add_api_key, create_project
from topics import RECEIPTS
from topics.admin import delete_topics, ensure_topics

HERE = Path(__file__).resolve().parent
# The floors of a single request (``bench/ingest_floor.py``); its "batch" floor is the batch's.
SINGLE_FLOORS = ("kafka", "kafka+db")


def wrk(url: str, api_key: str, duration: int, connections: int, items: int = 0) -> dict[str, float]:
    """wrk's figures for fresh receipts: one per request, or ``items`` per batch request."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run 'make bench-tools' (Debian's wrk package)")
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(HERE / "receipt.lua"),
         url, "--", api_key, uuid.uuid4().hex[:8], str(items)],
        capture_output=True, text=True, check=True,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if summary["non2xx"] or summary["socket_errors"]:
        raise RuntimeError(f"errors under load against {url}: {summary}\n{done.stdout}")
    return {"rps": summary["requests"] / summary["seconds"], **summary}


def measured(run: Callable[..., dict[str, float]], pids: list[int], *args: object) -> dict[str, Any]:
    """``run``'s figures, plus the CPU time per request meanwhile of the server processes ``pids``
    (and their children), of Kafka and PostgreSQL, and of the whole machine (servers, load
    generator, Kafka, PostgreSQL)."""
    def server_cpu_seconds() -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    before, machine_before = server_cpu_seconds(), machine_cpu_seconds()
    services_before = service_cpu_seconds()
    figures = run(*args)
    per_request = 1000 / figures["requests"]
    services = {name: round(per_request * (spent - services_before[name]), 3)
                for name, spent in service_cpu_seconds().items()}
    return {**figures, "cpu_ms_per_request": per_request * (server_cpu_seconds() - before),
            "machine_cpu_ms_per_request": per_request * (machine_cpu_seconds() - machine_before),
            "service_cpu_ms_per_request": services}


def at_rate(url: str, api_key: str, rate: float, seconds: float) -> dict[str, Any]:
    """``bench/open_loop.py`` at ``rate``: a fresh Idempotency-Key and reference per request."""
    address = urlsplit(url)
    host, port = address.hostname, address.port
    assert host is not None and port is not None
    run = uuid.uuid4().hex[:8]

    def request(n: int) -> bytes:
        key = f"{run}-{n}"
        body = orjson.dumps({"reference": f"inv_{key}", "event_type": "invoice.paid",
                             "effect_type": "grant_access"})
        headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key,
                   "Content-Type": "application/json"}
        return http_post(host, port, address.path, headers, body)

    return dict(open_loop(host, port, request, rate, seconds))


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics_url: str) -> Scrape:
    """Every sample of a Prometheus text scrape, by name and labels."""
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def server_side(before: Scrape, after: Scrape, histogram: str, **labels: str) -> dict[str, float]:
    """What a histogram of the gateway's own saw between two scrapes: its count, and the share
    of observations at or under each bucket bound (so the client's own delays are left out)."""
    def bucket_counts(scrape: Scrape) -> dict[float, float]:
        return {float(dict(key)["le"]): value for (name, key), value in scrape.items()
                if name == f"{histogram}_bucket" and labels.items() <= dict(key).items()}
    upto_before, upto_after = bucket_counts(before), bucket_counts(after)
    counted = upto_after[float("inf")] - upto_before.get(float("inf"), 0.0)
    shares = {f"le_{bound * 1000:g}ms": round((upto_after[bound] - upto_before.get(bound, 0.0)) / counted, 5)
              for bound in sorted(upto_after) if 0.0025 <= bound <= 0.1}
    return {"count": counted, **shares}


def wait_listening(server: subprocess.Popen[bytes], port: int, name: str, timeout: float = 30.0) -> None:
    """Until ``server`` accepts connections on ``port``; fails if it exits first or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on port {port}") from None
            time.sleep(0.2)


@contextmanager
def profiled(pid: int, seconds: int, recording: Path | None) -> Iterator[None]:
    """py-spy on ``pid`` for the run inside, into ``recording`` (nothing if None)."""
    spy = None if recording is None else start_recording(pid, seconds, recording)
    yield
    if spy is not None and spy.wait(30) != 0:
        raise RuntimeError(f"py-spy failed: {spy.stderr.read().decode() if spy.stderr else ''}")


def floor_peak(mode: str, env: dict[str, str], api_key: str, duration: int,
               connections: int, items: int = 0) -> dict[str, float]:
    """Peak of the durability floor (``bench/ingest_floor.py``) in ``mode``, measured as the others."""
    port = free_port()
    floor = subprocess.Popen([sys.executable, "-m", "bench.ingest_floor", str(port), mode], env=env)
    url = f"http://127.0.0.1:{port}/api/v1/receipt"
    try:
        wait_listening(floor, port, f"the {mode} floor")
        wrk(url, api_key, 3, connections, items)  # warm-up, as for the gateway
        return measured(wrk, [floor.pid], url, api_key, duration, connections, items)
    finally:
        floor.terminate()
        floor.wait(10)


def batch_figures(batch: dict[str, Any], floor: dict[str, Any] | None, items: int, connections: int,
                  single_rps: float) -> dict[str, Any]:
    """The batch peak per signal, against the single requests' peak and the batch floor's."""
    def per_signal(figures: dict[str, Any]) -> dict[str, Any]:
        return {"signals_per_s": round(figures["rps"] * items),
                "vs_single_signals_per_s": round(figures["rps"] * items / single_rps, 2),
                "cpu_ms_per_signal": round(figures["cpu_ms_per_request"] / items, 4),
                "machine_cpu_ms_per_signal": round(figures["machine_cpu_ms_per_request"] / items, 4),
                "service_cpu_ms_per_signal": {name: round(spent / items, 4) for name, spent
                                              in figures["service_cpu_ms_per_request"].items()}}
    return {"items": items, "connections": connections, "requests_per_s": round(batch["rps"]),
            **per_signal(batch), "p50_ms": batch["p50_ms"], "p99_ms": batch["p99_ms"],
            "floor": None if floor is None else per_signal(floor)}


async def make_project(database_url: str) -> str:
    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        project = await create_project(conn, name="bench")
        key = generate_api_key()
        await add_api_key(conn, project.id, "bench", key)
    await pool.close()
    return key.plaintext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-seconds", type=int, default=15)
    parser.add_argument("--latency-rate", type=float,
                        help="requests/s of the latency runs (default: half our peak)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="gateway processes sharing the port (SO_REUSEPORT), as replicas behind a "
                             "Service share the traffic; the bare handler stays one process")
    parser.add_argument("--floors", action="store_true",
                        help="also measure the durability floors (bench/ingest_floor.py: parse, "
                             "Kafka ack, and with an idempotency claim; nothing else)")
    parser.add_argument("--batch-items", type=int, default=100,
                        help="receipts per request of the batch-ingest peak (0: skip it)")
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--profile", type=Path, metavar="RAW",
                        help="record the gateway with py-spy during its peak run into RAW "
                             "and print the top costs")
    parser.add_argument("--profile-batch", type=Path, metavar="RAW",
                        help="the same, during the batch-ingest peak run")
    args = parser.parse_args()

    with provide_services() as services, TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        template = migrated_template(services.admin_database_url)
        db_name = f"sp_bench_{uuid.uuid4().hex[:8]}"
        database_url = create_database(services.admin_database_url, db_name, template=template)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        ensure_topics(services.kafka_bootstrap, prefix, 6)
        api_key = asyncio.run(make_project(database_url))

        ours_port, bare_port = free_port(), free_port()
        env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=database_url,
                        topic_prefix=prefix, workdir=workdir,
                        extra={"SENDPROMPTLY_HTTP_PORT": str(ours_port), "SENDPROMPTLY_LOG_LEVEL": "INFO",
                               "SENDPROMPTLY_HTTP_REUSE_PORT": str(args.replicas > 1).lower()})
        gateways = [ManagedProcess(f"gateway-{n}", ["gateway"], env, workdir / f"gateway-{n}.log")
                    for n in range(args.replicas)]
        bare = subprocess.Popen([sys.executable, str(HERE / "bare_server.py"), str(bare_port)])
        try:
            wait_listening(bare, bare_port, "the bare handler")
            for gateway in gateways:
                gateway.start()
                gateway.wait_ready(f"http://127.0.0.1:{ours_port}/readyz")
                gateway.wait_log("gateway listening on")  # this one, not another on the shared port
            ours_url = f"http://127.0.0.1:{ours_port}/api/v1/receipt"
            bare_url = f"http://127.0.0.1:{bare_port}/api/v1/receipt"
            gateway_pids = child_pids("sendpromptly gateway")
            wrk(ours_url, api_key, 3, args.connections)  # warm-up: connections, pool, producer
            peak_bare = measured(wrk, [bare.pid], bare_url, api_key, args.duration, args.connections)
            with profiled(gateway_pids[0], args.duration, args.profile):
                peak_ours = measured(wrk, gateway_pids, ours_url, api_key, args.duration, args.connections)
            batch = None
            if args.batch_items:
                with profiled(gateway_pids[0], args.duration, args.profile_batch):
                    batch = measured(wrk, gateway_pids, ours_url, api_key, args.duration,
                                     args.batch_connections, args.batch_items)
            floor_env = {**env, "FLOOR_TOPIC": RECEIPTS.name(prefix)}
            floors = {mode: floor_peak(mode, floor_env, api_key, args.duration, args.connections)
                      for mode in (SINGLE_FLOORS if args.floors else ())}
            batch_floor = (floor_peak("batch", floor_env, api_key, args.duration, args.batch_connections,
                                      args.batch_items) if args.floors and args.batch_items else None)
            rate = args.latency_rate or peak_ours["rps"] / 2
            lat_bare = at_rate(bare_url, api_key, rate, args.latency_seconds)
            metrics_url = f"http://127.0.0.1:{ours_port}/metrics"
            before = scrape(metrics_url)
            lat_ours = at_rate(ours_url, api_key, rate, args.latency_seconds)
            after = scrape(metrics_url)
            lat_ours["server_side"] = {
                "request": server_side(before, after, "sendpromptly_http_request_seconds",
                                       route="ingest.receipt"),
                "kafka_ack": server_side(before, after, "sendpromptly_kafka_produce_seconds"),
            }
        finally:
            for gateway in gateways:
                gateway.stop()
            bare.terminate()
            bare.wait(10)
            delete_topics(services.kafka_bootstrap, prefix)
            drop_database(services.admin_database_url, db_name)
            drop_database(services.admin_database_url, template)

    result = {"peak_rps": {"gateway": round(peak_ours["rps"]), "bare": round(peak_bare["rps"])},
              "ratio": round(peak_ours["rps"] / peak_bare["rps"], 3),
              "cpu_ms_per_request": {"gateway": round(peak_ours["cpu_ms_per_request"], 3),
                                     "bare": round(peak_bare["cpu_ms_per_request"], 3)},
              "machine_cpu_ms_per_request": {"gateway": round(peak_ours["machine_cpu_ms_per_request"], 3),
                                             "bare": round(peak_bare["machine_cpu_ms_per_request"], 3)},
              "service_cpu_ms_per_request": {"gateway": peak_ours["service_cpu_ms_per_request"],
                                             "bare": peak_bare["service_cpu_ms_per_request"]},
              "floors": {mode: {"rps": round(figures["rps"]),
                                "ratio": round(figures["rps"] / peak_bare["rps"], 3),
                                "cpu_ms_per_request": round(figures["cpu_ms_per_request"], 3),
                                "machine_cpu_ms_per_request": round(figures["machine_cpu_ms_per_request"], 3),
                                "service_cpu_ms_per_request": figures["service_cpu_ms_per_request"]}
                         for mode, figures in floors.items()},
              "gateway_vs_claim_ack_floor": (round(peak_ours["rps"] / floors["kafka+db"]["rps"], 3)
                                             if "kafka+db" in floors else None),
              "batch": None if batch is None else batch_figures(batch, batch_floor, args.batch_items,
                                                                args.batch_connections, peak_ours["rps"]),
              "at_half_peak": {"rate": round(rate), "gateway": lat_ours, "bare": lat_bare},
              "connections": args.connections, "replicas": args.replicas, "cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))
    for recording in (args.profile, args.profile_batch):
        if recording is not None:
            print(summary(recording))


if __name__ == "__main__":
    main()
