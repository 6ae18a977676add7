"""Ingest benchmark: our gateway (auth + validation + idempotency + Kafka ack) against a bare aiohttp
handler that only parses JSON, in one run, on this machine.

    .venv/bin/python -m bench.ingest [--duration 15] [--connections 32]

1. Peak: wrk (one thread, N connections, a fresh Idempotency-Key per request) against each server.
2. Latency at half of our peak: an open-loop client sends at a fixed rate (half of our measured
   peak) to each server and measures from the scheduled send time, so a stall shows up in the
   tail instead of slowing the sender down (no coordinated omission). It is Python on the same
   cores, so its own CPU time and event-loop delays are part of what it measures.
3. The same rate paced by wrk (``at_half_peak_wrk``): each of ``--paced-connections`` connections
   pauses before every request so that together they aim at the rate. wrk costs little CPU, but
   it measures from the actual send, and a slow answer delays that connection's next request
   (coordinated omission: stalls are under-counted, and the rate reached falls below the aim).

Kafka and PostgreSQL come from the same place as the tests' (environment, testcontainers, or the
local scripts); the gateway runs as the real ``sendpromptly gateway`` process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp

from bench.processes import child_pid, cpu_seconds, machine_cpu_seconds
from bench.profile import start_recording, summary
from sendpromptly.apikeys import generate_api_key
from store.db import open_pool
from store.projects import add_api_key, create_project
from tests.support.db import create_database, drop_database, migrated_template
from tests.support.processes import ManagedProcess, free_port
from tests.support.services import provide_services
from tests.support.stack import stack_env
from topics.admin import delete_topics, ensure_topics

HERE = Path(__file__).resolve().parent


def wrk(url: str, api_key: str, duration: int, connections: int, pause_ms: int = 0) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(HERE / "receipt.lua"),
         url, "--", api_key, uuid.uuid4().hex[:8], str(pause_ms)],
        capture_output=True, text=True, check=True,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if summary["non2xx"] or summary["socket_errors"]:
        raise RuntimeError(f"errors under load against {url}: {summary}\n{done.stdout}")
    return {"rps": summary["requests"] / summary["seconds"], **summary}


def measured(run: Callable[..., dict[str, float]], pid: int, *args: object) -> dict[str, float]:
    """``run``'s figures, plus the CPU time per request meanwhile of ``pid`` (and its children) and
    of the whole machine (server, load generator, Kafka, PostgreSQL)."""
    before, machine_before = cpu_seconds(pid), machine_cpu_seconds()
    figures = run(*args)
    per_request = 1000 / figures["requests"]
    return {**figures, "cpu_ms_per_request": per_request * (cpu_seconds(pid) - before),
            "machine_cpu_ms_per_request": per_request * (machine_cpu_seconds() - machine_before)}


async def open_loop(url: str, api_key: str, rate: float, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    run = uuid.uuid4().hex[:8]
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(n: int, scheduled: float) -> None:
            nonlocal failures
            key = f"{run}-{n}"
            body = {"reference": f"inv_{key}", "event_type": "invoice.paid", "effect_type": "grant_access"}
            headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key}
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    failures += 1
            latencies.append(time.perf_counter() - scheduled)

        start = time.perf_counter()
        total = int(rate * seconds)
        tasks = []
        for n in range(total):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, scheduled)))
        await asyncio.gather(*tasks)
    latencies.sort()
    return {"rate": rate, "requests": total, "failures": failures,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)], "max_ms": 1000 * latencies[-1]}


def paced(url: str, api_key: str, rate: float, seconds: int, connections: int) -> dict[str, float]:
    """wrk at about ``rate``: each connection pauses connections/rate between requests (the time
    of the answer comes on top, so the rate reached is lower; it is reported)."""
    figures = wrk(url, api_key, seconds, connections, round(1000 * connections / rate))
    return {"rate": round(figures["rps"]), "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"],
            "max_ms": figures["max_ms"]}


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
    parser.add_argument("--paced-connections", type=int, default=64,
                        help="connections of the wrk-paced latency runs")
    parser.add_argument("--latency-rate", type=float,
                        help="requests/s of the latency runs (default: half our peak)")
    parser.add_argument("--profile", type=Path, metavar="RAW",
                        help="record the gateway with py-spy during its peak run into RAW "
                             "and print the top costs")
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
                        extra={"SENDPROMPTLY_HTTP_PORT": str(ours_port), "SENDPROMPTLY_LOG_LEVEL": "WARNING"})
        gateway = ManagedProcess("gateway", ["gateway"], env, workdir / "gateway.log")
        bare = subprocess.Popen([sys.executable, str(HERE / "bare_server.py"), str(bare_port)])
        gateway.start()
        try:
            gateway.wait_ready(f"http://127.0.0.1:{ours_port}/readyz")
            ours_url = f"http://127.0.0.1:{ours_port}/api/v1/receipt"
            bare_url = f"http://127.0.0.1:{bare_port}/api/v1/receipt"
            gateway_pid = child_pid("sendpromptly gateway")
            wrk(ours_url, api_key, 3, args.connections)  # warm-up: connections, pool, producer
            peak_bare = measured(wrk, bare.pid, bare_url, api_key, args.duration, args.connections)
            spy = start_recording(gateway_pid, args.duration, args.profile) if args.profile else None
            peak_ours = measured(wrk, gateway_pid, ours_url, api_key, args.duration, args.connections)
            if spy is not None and spy.wait(30) != 0:
                raise RuntimeError(f"py-spy failed: {spy.stderr.read().decode() if spy.stderr else ''}")
            rate = args.latency_rate or peak_ours["rps"] / 2
            lat_bare = asyncio.run(open_loop(bare_url, api_key, rate, args.latency_seconds))
            lat_ours = asyncio.run(open_loop(ours_url, api_key, rate, args.latency_seconds))
            paced_bare = paced(bare_url, api_key, rate, args.latency_seconds, args.paced_connections)
            paced_ours = paced(ours_url, api_key, rate, args.latency_seconds, args.paced_connections)
        finally:
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
              "at_half_peak": {"rate": round(rate), "gateway": lat_ours, "bare": lat_bare},
              "at_half_peak_wrk": {"aimed_rate": round(rate), "connections": args.paced_connections,
                                   "gateway": paced_ours, "bare": paced_bare},
              "connections": args.connections, "cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))
    if args.profile:
        print(summary(args.profile))


if __name__ == "__main__":
    main()
