"""Issue #10: the whole stack under steady load while faults are injected one at a time, then every
accepted request reconciled against ground truth. Nothing may be lost, wrong or doubled.

Short by default (60 s of load, every fault kind once, part of ``make test``); ``make chaos`` sets
``SENDPROMPTLY_CHAOS_SECONDS=240`` for the long run whose figures are in docs/reliability.md."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from harness.services import Services
from harness.stack import SINK_NAMES
from tests.chaos.client import AnswerLog, RetryingClient
from tests.chaos.faults import FaultInjector, inject_all
from tests.chaos.ground_truth import FlowRecord, plan_flows
from tests.chaos.lag import LagMonitor
from tests.chaos.load import Credentials, LoadGenerator
from tests.chaos.observed import pending_work, read_observed
from tests.chaos.receiver import holding_receiver
from tests.chaos.reconcile import reconcile
from tests.chaos.recovery import measure_recoveries
from tests.chaos.report import build_rows, render
from tests.conftest import TEST_FLOW_PARTITIONS, ProjectKey
from tests.support.alert_peers import Mailbox
from tests.support.api import Api
from tests.support.faults import require_local
from tests.support.operator_actions import add_destination, set_callback

pytestmark = pytest.mark.e2e

CHAOS_SECONDS = float(os.environ.get("SENDPROMPTLY_CHAOS_SECONDS", "60"))
FLOWS_PER_SECOND = 100.0
WARMUP_SECONDS = 5.0  # steady load before the first fault
TAIL_SECONDS = 10.0  # steady load after the last fault is restored
MIN_GAP_SECONDS = 3.0  # between one fault restored and the next injected
# The load never runs longer than this, whatever the faults take: a hard bound on the flows sent.
MAX_LOAD_SECONDS = CHAOS_SECONDS + 240.0
# Past the last deadline: detection (≤ 2 s), the read model, alerts and callback retries.
DRAIN_AFTER_DEADLINE_SECONDS = 5.0
DRAIN_TIMEOUT_SECONDS = 60.0
# Fast retries, so that a callback or an alert cut by a fault is retried within the run.
RETRY_SCHEDULE = "1,2,4,8"
LEASE_SECONDS = "15"


@pytest.mark.timeout(int(MAX_LOAD_SECONDS + 600))
async def test_faults_under_load_lose_nothing_and_double_nothing(
        stack_factory, services: Services, project: ProjectKey, admin_token: str, smtp: Mailbox,
        http: aiohttp.ClientSession, database_url: str, topic_prefix: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    require_local(services, kafka=True, postgres=True)
    async with holding_receiver() as receiver:
        stack = stack_factory(sinks=SINK_NAMES, SENDPROMPTLY_AGENTS_INSTANCE_ID="agents-0",
                              SENDPROMPTLY_SMTP_URL=smtp.url,
                              SENDPROMPTLY_CALLBACK_RETRY_SCHEDULE=RETRY_SCHEDULE,
                              SENDPROMPTLY_ALERT_RETRY_SCHEDULE=RETRY_SCHEDULE,
                              # A send cut off by a kill -9 is made again once its lease runs out.
                              SENDPROMPTLY_CALLBACK_LEASE_SECONDS=LEASE_SECONDS,
                              SENDPROMPTLY_ALERT_LEASE_SECONDS=LEASE_SECONDS)
        operator = Api(http, stack.base_url, admin_token)
        await set_callback(operator, project.project_id, receiver.url)
        await add_destination(operator, project.project_id, "email", "ops@example.com")

        monitor = LagMonitor(services.kafka_bootstrap, topic_prefix, TEST_FLOW_PARTITIONS)
        monitor_stop = asyncio.Event()
        monitor_task = asyncio.create_task(monitor.run(monitor_stop))
        answers = AnswerLog()
        injector = FaultInjector(stack, services, receiver)
        plans = plan_flows(int(FLOWS_PER_SECOND * MAX_LOAD_SECONDS), seed=10, run_id=uuid.uuid4().hex[:6])
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
            load = LoadGenerator(RetryingClient(session, stack.base_url, answers),
                                 Credentials(project.api_key, admin_token), plans, FLOWS_PER_SECOND)
            load_task = asyncio.create_task(load.run())
            began = time.time()
            spacing = (CHAOS_SECONDS - WARMUP_SECONDS - TAIL_SECONDS) / len(injector.kinds())
            windows = await inject_all(injector, first_at=began + WARMUP_SECONDS, spacing=spacing,
                                       min_gap=MIN_GAP_SECONDS)
            await asyncio.sleep(max(TAIL_SECONDS, began + CHAOS_SECONDS - time.time()))
            load.stop.set()
            load_seconds = time.time() - began
            records = await load_task

        await drain(records, monitor, database_url, project.project_id)
        drained_at = time.time()
        monitor_stop.set()
        await monitor_task
        observed = await read_observed(database_url, project.project_id, list(smtp.messages))
        anomalies = reconcile(records, observed, receiver.seen)

    refused_at = [d.first_sent_at for r in records for d in (r.receipt, r.result, r.reprocess)
                  if d is not None and not d.accepted]
    rows = build_rows(windows, anomalies, refused_at, answers.errors(),
                      measure_recoveries(windows, records, monitor, observed))
    reprocessed = sum(r.replay_id is not None for r in records)
    table = render(rows, f"chaos: {load_seconds:.0f} s of load at {FLOWS_PER_SECOND:.0f} flows/s, "
                         f"{len(records)} flows, {reprocessed} reprocessed, "
                         f"{len(receiver.seen)} callbacks received, {len(smtp.messages)} alerts")
    evidence = "\n".join([*(f"window  {w.started_at:.3f}-{w.restored_at:.3f} {w.name}; groups behind "
                            f"when the next began: {monitor.behind_at(nxt.started_at if nxt else drained_at)}"
                            for w, nxt in zip(windows, [*windows[1:], None], strict=True)),
                          *(f"{a.kind.value:7} {a.at:.3f} {a.reference}: {a.what}" for a in anomalies),
                          *(f"error   {e.at:.3f} {e.path}: {e.status} {e.detail}" for e in answers.errors())])
    (tmp_path / "chaos-report.txt").write_text(f"{table}\n\n{evidence}\n")
    request.node.add_report_section("call", "chaos report", table)
    print(f"\n{table}\n(details: {tmp_path / 'chaos-report.txt'})")
    first = "\n".join(evidence.splitlines()[:40])
    assert all(row.clean for row in rows), f"{table}\n\nfirst anomalies:\n{first}"


async def drain(records: list[FlowRecord], monitor: LagMonitor, database_url: str, project_id: str) -> None:
    """Wait past the last deadline until every consumer is caught up and no callback or alert is
    still due; after ``DRAIN_TIMEOUT_SECONDS`` the reconciler shows whatever is stuck."""
    last_deadline = max((r.deadline for r in records if r.deadline is not None), default=time.time())
    await asyncio.sleep(max(0.0, last_deadline + DRAIN_AFTER_DEADLINE_SECONDS - time.time()))
    give_up = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < give_up:
        caught_up = bool(monitor.samples) and not monitor.samples[-1][1]
        if caught_up and await pending_work(database_url, project_id) == 0:
            return
        await asyncio.sleep(1.0)
