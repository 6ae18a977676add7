"""What PostgreSQL must sustain per accepted flow: statements, transactions and rows, on a whole
stack (gateway, agents, every sink).

    .venv/bin/python -m bench.postgres_per_flow [--flows 2000] [--failed-share 0.1]

A scratch PostgreSQL cluster of its own (scripts/postgres.sh, state in .run/bench-postgres) with
pg_stat_statements loaded, the test Kafka broker (started by scripts/kafka.sh if needed). The stack
idles for as long as the run will take first, to measure what its background loops cost (outbox
relay, delivery and alert loops, key usage); then N flows are sent through the API (a receipt, then
its result: `succeeded`, or `failed` for --failed-share of them, which opens an incident and
alerts its destination's email) and the run ends once every flow is in the read model and the
audit log has stopped growing. Reported per accepted flow, with the idle cost of the same duration
taken off: statements (pg_stat_statements calls), transactions (pg_stat_database xact_commit) and
rows written per table (pg_stat_user_tables), and the statements that make up most of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.rows import dict_row

from common.apikeys import generate_api_key
from harness.db import migrated_template, url_for
from harness.services import provide_services
from harness.stack import SINK_NAMES, build_stack, stack_env
from store.db import open_pool
from store.destinations import add_destination
from store.projects import add_api_key, create_project
from topics.admin import delete_topics, ensure_topics

REPO = Path(__file__).resolve().parents[1]
PG_ENV = {"PG_STATE_DIR": str(REPO / ".run" / "bench-postgres"), "PG_PORT": "15499"}
CONCURRENCY = 16


def postgres(command: str) -> str:
    done = subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), command],
                          env={**os.environ, **PG_ENV}, capture_output=True, text=True, check=True,
                          timeout=180)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def postgres_with_statements() -> str:
    """The scratch cluster's admin URL, started with pg_stat_statements loaded."""
    url = postgres("start")
    with psycopg.connect(url, autocommit=True) as conn:
        loaded = conn.execute("SHOW shared_preload_libraries").fetchone()
        if loaded is None or "pg_stat_statements" not in loaded[0]:
            # Top-level statements only (the default): what the processes send, not what triggers run.
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            restart = True
        else:
            restart = False
    if restart:
        postgres("stop")
        url = postgres("start")
    return url


# A backend reports the rows it wrote to the table and database counters (pg_stat_user_tables,
# pg_stat_database) when its transaction ends, but at most once a second, and an idle one up to 10 s
# later (PostgreSQL 15's PGSTAT_IDLE_INTERVAL); pg_stat_statements counts at once. Counters read
# sooner miss the last writes, which then land in the next window: wait this long before reading.
STATS_FLUSH_SECONDS = 11


def counters(url: str) -> dict[str, Any]:
    """Statements, transactions and rows written so far; call STATS_FLUSH_SECONDS after the
    writes to be counted."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        database = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched"
            " FROM pg_stat_database WHERE datname = current_database()").fetchone()
        tables = {row["relname"]: (row["n_tup_ins"], row["n_tup_upd"], row["n_tup_del"])
                  for row in conn.execute("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del"
                                          " FROM pg_stat_user_tables").fetchall()}
        statements = {row["query"]: (row["calls"], row["rows"]) for row in conn.execute(
            "SELECT query, calls, rows FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchall()}
    return {"database": database, "tables": tables, "statements": statements}


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_stat_reset()")
    time.sleep(1.0)  # the statistics collector's view settles


def settled(url: str, flows: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        done = conn.execute("SELECT count(*) FROM flows WHERE status IN ('applied', 'incident')").fetchone()
        return done is not None and done[0] >= flows


def audit_rows(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        return 0 if row is None else int(row[0])


async def send_flows(base_url: str, api_key: str, flows: int, failed_share: float) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(flows):
        queue.put_nowait(n)
    failed_every = round(1 / failed_share) if failed_share else 0

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            reference = f"inv_{n}"
            status = "failed" if failed_every and n % failed_every == 0 else "succeeded"
            for path, body in (("receipt", {"reference": reference, "event_type": "invoice.paid",
                                            "effect_type": "grant_access", "timeout_minutes": 60}),
                               ("result", {"reference": reference, "status": status})):
                async with session.post(f"{base_url}/api/v1/{path}", json=body,
                                        headers={**headers, "Idempotency-Key": f"{path}-{n}"}) as answer:
                    assert answer.status == 202, await answer.text()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))


async def create_demo_project(url: str) -> str:
    pool = await open_pool(url, max_size=1)
    try:
        async with pool.connection() as conn:
            project = await create_project(conn, name="bench", timeout_minutes=60)
            key = generate_api_key()
            await add_api_key(conn, project.id, "bench", key)
            await add_destination(conn, project.id, "email", "ops@example.com")
    finally:
        await pool.close()
    return key.plaintext


def delta(after: dict[str, Any], before: dict[str, Any] | None = None) -> dict[str, Any]:
    before = before or {"database": {}, "tables": {}, "statements": {}}
    return {
        "database": {k: v - before["database"].get(k, 0) for k, v in after["database"].items()},
        "tables": {t: tuple(a - b for a, b in zip(v, before["tables"].get(t, (0, 0, 0)), strict=True))
                   for t, v in after["tables"].items()},
        "statements": {q: (c - before["statements"].get(q, (0, 0))[0],
                           r - before["statements"].get(q, (0, 0))[1])
                       for q, (c, r) in after["statements"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--failed-share", type=float, default=0.1)
    args = parser.parse_args()

    admin_url = postgres_with_statements()
    with provide_services() as services, tempfile.TemporaryDirectory() as workdir:
        url = url_for(admin_url, migrated_template(admin_url))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        prefix = f"b{uuid.uuid4().hex[:8]}."
        ensure_topics(services.kafka_bootstrap, prefix, 2)
        env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=url, topic_prefix=prefix,
                        workdir=Path(workdir), extra={"SENDPROMPTLY_SMTP_URL": "smtp://127.0.0.1:9"})
        stack = build_stack(env, Path(workdir), SINK_NAMES)
        stack.start()
        try:
            api_key = asyncio.run(create_demo_project(url))
            time.sleep(3)
            # The load first, to learn how long it takes; then an idle spell of that length.
            reset(url)
            started = time.monotonic()
            asyncio.run(send_flows(stack.base_url, api_key, args.flows, args.failed_share))
            while not settled(url, args.flows):
                time.sleep(0.5)
            rows = -1
            while rows != (rows := audit_rows(url)):
                time.sleep(2)
            elapsed = time.monotonic() - started
            time.sleep(STATS_FLUSH_SECONDS)
            loaded = counters(url)
            reset(url)
            time.sleep(elapsed + STATS_FLUSH_SECONDS)  # as long as the window above
            idle = counters(url)
        finally:
            stack.stop()
            delete_topics(services.kafka_bootstrap, prefix)
    net = delta(loaded, idle)
    flows = args.flows
    per_flow_tables = {table: [round(x / flows, 2) for x in counts]
                       for table, counts in sorted(net["tables"].items()) if any(counts)}
    top = sorted(net["statements"].items(), key=lambda item: -item[1][0])[:15]
    report = {
        "flows": flows, "failed_share": args.failed_share, "seconds": round(elapsed, 1),
        "statements_per_flow": round(sum(c for c, _ in net["statements"].values()) / flows, 1),
        "statement_rows_per_flow": round(sum(r for _, r in net["statements"].values()) / flows, 1),
        "transactions_per_flow": round(net["database"]["xact_commit"] / flows, 1),
        "rows_inserted_updated_deleted_per_flow": [round(net["database"][k] / flows, 1)
                                                   for k in ("tup_inserted", "tup_updated", "tup_deleted")],
        "idle_statements_per_second": round(sum(c for c, _ in idle["statements"].values())
                                            / (elapsed + STATS_FLUSH_SECONDS), 1),
        "per_table_ins_upd_del_per_flow": per_flow_tables,
        "top_statements_calls_per_flow": [(round(calls / flows, 2), " ".join(query.split())[:110])
                                          for query, (calls, _) in top],
    }
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
