"""The console's pages with 10 000 incidents in a project (issue #13 item 10: each page renders in
under 100 ms server-side): the incident list and an incident's page.

    .venv/bin/python -m bench.console [--incidents 10000] [--runs 5] [--requests 50]

A real gateway (and the agents a stack starts with it; no sinks) on the test services (a scratch
database from the migrated template, the test Kafka broker; harness/services.py), a project
whose incidents are written straight into the read model through the store layer
(``store.incidents.apply_event``, as the read-model sink writes them: every one opened, every
third resolved, every fifth acknowledged), an operator signed in through the sign-in form. Then
--runs rounds of --requests GETs of each page, one at a time on a kept-alive connection: the list
unfiltered (the first page of 50, the counts), the list filtered to resolved ones with a reference
search, and the page of the newest incident. Per round and page: the gateway's own time (its
``sendpromptly_http_request_seconds`` histogram by route, sum over count: from the request read to
the answer written) and the wall time the client saw (median, p95, max; loopback adds ~0.1 ms).
Progress goes to stderr, the figures to stdout as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from api_gateway import control_plane
from common.ids import new_id
from harness.db import create_database, migrated_template
from harness.services import provide_services
from harness.stack import build_stack, stack_env
from store import incidents
from store.db import open_pool
from store.projects import create_project
from topics import IncidentEvent
from topics.admin import ensure_topics
from topics.fields import Mode
from topics.messages import IncidentEventType, IncidentReason, Resolution

EMAIL = "bench@example.com"
PASSWORD = f"pw-{uuid.uuid4().hex}"
LATENCY = "sendpromptly_http_request_seconds"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def seed(database_url: str, count: int) -> tuple[str, str]:
    """A project with ``count`` incidents and an admin operator; the project's and the newest
    incident's ids."""
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            project = await create_project(conn, name="bench console", timeout_minutes=30)
            await control_plane.invite_operator(conn, control_plane.Actor("cli:bench"), email=EMAIL,
                                                is_admin=True, project_ids=[], password=PASSWORD)
            newest = ""
            for n in range(count):
                newest = new_id("inc")
                opened_at = T0 + timedelta(seconds=n)
                for kind, at in _events(n, opened_at):
                    await incidents.apply_event(conn, IncidentEvent(
                        event_id=new_id("evt"), type=IncidentEventType(kind), incident_id=newest,
                        project_id=project.id, reference=f"inv_{n}", mode=Mode.LIVE, actor="system:bench",
                        occurred_at=at, deadline=opened_at,
                        reason=IncidentReason.TIMEOUT if n % 2 else IncidentReason.FAILED_OUTCOME,
                        resolution=Resolution.MANUAL if kind == "resolved" else None,
                        note="resolved by the bench" if kind == "resolved" else None))
                if n % 1000 == 999:
                    log(f"seeded {n + 1} incidents")
    finally:
        await pool.close()
    return project.id, newest


def _events(n: int, opened_at: datetime) -> list[tuple[str, datetime]]:
    events = [("opened", opened_at)]
    if n % 5 == 0:
        events.append(("acknowledged", opened_at + timedelta(seconds=1)))
    if n % 3 == 0:
        events.append(("resolved", opened_at + timedelta(seconds=2)))
    return events


async def sign_in(session: aiohttp.ClientSession, base_url: str) -> None:
    async with session.get(base_url + "/sign-in") as page:
        found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert found, "no CSRF token on the sign-in page"
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": found.group(1), "next": "/projects"}
    async with session.post(base_url + "/sign-in", data=form) as answer:
        assert answer.status == 200 and answer.url.path == "/projects", (answer.status, answer.url)


async def server_seconds(session: aiohttp.ClientSession, base_url: str) -> dict[str, tuple[float, float]]:
    """Per console route: the gateway's (sum of seconds, count) of GETs answered so far."""
    async with session.get(base_url + "/metrics") as answer:
        text = await answer.text()
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LATENCY:
            continue
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if sample.labels.get("method") != "GET" or not route.startswith("console."):
                continue
            if sample.name.endswith("_sum"):
                totals.setdefault(route, [0.0, 0.0])[0] = sample.value
            elif sample.name.endswith("_count"):
                totals.setdefault(route, [0.0, 0.0])[1] = sample.value
    return {route: (sum_, count) for route, (sum_, count) in totals.items()}


async def measure(session: aiohttp.ClientSession, base_url: str, pages: dict[str, tuple[str, str]],
                  requests: int) -> dict[str, Any]:
    """One round: ``requests`` GETs of each page; its server-side mean and the client's spread."""
    figures: dict[str, Any] = {}
    for name, (route, path) in pages.items():
        before = await server_seconds(session, base_url)
        walls = []
        for _ in range(requests):
            started = time.perf_counter()
            async with session.get(base_url + path) as answer:
                await answer.read()
                assert answer.status == 200, (path, answer.status)
            walls.append((time.perf_counter() - started) * 1000)
        after = await server_seconds(session, base_url)
        served = after[route][1] - before.get(route, (0.0, 0.0))[1]
        spent = after[route][0] - before.get(route, (0.0, 0.0))[0]
        walls.sort()
        figures[name] = {"server_mean_ms": round(spent / served * 1000, 2),
                         "wall_median_ms": round(statistics.median(walls), 2),
                         "wall_p95_ms": round(walls[int(len(walls) * 0.95) - 1], 2),
                         "wall_max_ms": round(walls[-1], 2)}
    return figures


async def bench(base_url: str, project_id: str, incident_id: str, runs: int, requests: int) -> dict[str, Any]:
    pages = {
        "incident list": ("console.incidents", f"/projects/{project_id}/incidents"),
        "incident list, resolved, reference search": (
            "console.incidents", f"/projects/{project_id}/incidents?status=resolved&reference=inv_9999"),
        "incident page": ("console.incident", f"/incidents/{incident_id}"),
    }
    # Cookies from 127.0.0.1: aiohttp keeps cookies of IP hosts only when told to.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, base_url)
        await measure(session, base_url, pages, 5)  # warm-up: caches, prepared statements
        return {"runs": [await measure(session, base_url, pages, requests) for _ in range(runs)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    with provide_services() as services, tempfile.TemporaryDirectory() as workdir:
        database_url = create_database(services.admin_database_url, f"sp_bench_{uuid.uuid4().hex[:12]}",
                                       template=migrated_template(services.admin_database_url))
        started = time.monotonic()
        project_id, incident_id = asyncio.run(seed(database_url, args.incidents))
        log(f"seeded {args.incidents} incidents in {time.monotonic() - started:.1f} s")
        prefix = f"b{uuid.uuid4().hex[:8]}."
        ensure_topics(services.kafka_bootstrap, prefix, 2)
        env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=database_url,
                        topic_prefix=prefix, workdir=Path(workdir))
        stack = build_stack(env, Path(workdir), ())
        stack.start()
        try:
            figures = asyncio.run(bench(stack.base_url, project_id, incident_id, args.runs, args.requests))
        finally:
            stack.stop()
    print(json.dumps({"incidents": args.incidents, "requests_per_page_per_run": args.requests, **figures},
                     indent=2))


if __name__ == "__main__":
    main()
