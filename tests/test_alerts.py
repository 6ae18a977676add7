"""Alerts on the real stack: incidents opened and resolved reach a real SMTP server (aiosmtpd) and a
Slack-like HTTPS webhook on loopback, once per (incident, event, destination), across kill -9 and
replicas; every send is recorded before it is made, and one cut off by kill -9 is recorded as
interrupted and made again; failures are retried or recorded on the destination; operators can
send a test alert."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from harness.processes import ManagedProcess, free_port
from harness.stack import SINK_NAMES, Stack
from store.db import open_pool
from store.notifications import INTERRUPTED, Attempt, list_attempts
from tests.conftest import ProjectKey
from tests.support.alert_peers import Mailbox, SlackHook, mails, parts, posts
from tests.support.api import Api, eventually
from tests.support.operator_actions import add_destination, open_incident, reprocess, set_callback

pytestmark = pytest.mark.e2e

CONSOLE = "https://console.example.test"
# The shortest lease there is: a send cut off by a crash is made again after it.
LEASE_SECONDS = 15


@pytest.fixture
def stack(stack_factory, smtp: Mailbox, loopback_cert: tuple[Path, Path]) -> Stack:
    return stack_factory(sinks=SINK_NAMES, SENDPROMPTLY_SMTP_URL=smtp.url, SENDPROMPTLY_CONSOLE_URL=CONSOLE,
                         SENDPROMPTLY_ALERT_RETRY_SCHEDULE="1,1", SENDPROMPTLY_CALLBACK_RETRY_SCHEDULE="1",
                         SENDPROMPTLY_ALERT_LEASE_SECONDS=str(LEASE_SECONDS),
                         SSL_CERT_FILE=str(loopback_cert[0]))


async def destinations_of(operator_api: Api, project_id: str) -> dict[str, dict[str, Any]]:
    status, listed = await operator_api.get(f"/api/v1/projects/{project_id}/alert-destinations")
    assert status == 200
    return {d["id"]: d for d in listed["items"]}


async def notification_rows(database_url: str) -> list[dict[str, Any]]:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            return await (await conn.execute(
                "SELECT incident_id, event_type, destination_id, status, attempts, last_error"
                " FROM notifications ORDER BY id")).fetchall()
    finally:
        await pool.close()


async def attempt_rows(database_url: str) -> list[Attempt]:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            ids = [row["id"] for row in await (await conn.execute("SELECT id FROM notifications")).fetchall()]
            return await list_attempts(conn, ids)
    finally:
        await pool.close()


async def assert_leads_to_the_incident_page(stack: Stack, link: str) -> None:
    """``link``, under the console URL the alert was given, is the gateway's page of the incident:
    a visitor is sent to sign in and back there (a path with no page would be a 404)."""
    path = link.removeprefix(CONSOLE)
    async with aiohttp.ClientSession() as http, \
            http.get(stack.base_url + path, allow_redirects=False) as answer:
        assert answer.status == 303, f"{link}: HTTP {answer.status}"
        assert answer.headers["Location"] == "/sign-in?next=" + quote(path)


async def test_an_opened_and_a_resolved_incident_alert_each_destination_once(
        api: Api, operator_api: Api, project: ProjectKey, smtp: Mailbox, slack: SlackHook,
        database_url: str, stack: Stack) -> None:
    await add_destination(operator_api, project.project_id, "email", "ops@example.com")
    await add_destination(operator_api, project.project_id, "slack", slack.base_url + "/hook")
    incident = await open_incident(api, "inv_alert")
    link = f"{CONSOLE}/incidents/{incident['id']}"

    (opened,) = await mails(smtp, 1)
    _, read = await operator_api.get(f"/api/v1/projects/{project.project_id}")
    name = read["name"]
    assert opened["To"] == "ops@example.com"
    assert opened["Subject"] == (f"[TEST] Incident opened: {name} (test), "
                                 "failed_outcome, reference inv_alert")
    body = parts(opened)
    assert set(body) == {"text/plain", "text/html"}
    for text in body.values():
        assert link in text and "inv_alert" in text and "failed_outcome" in text and name in text
    await assert_leads_to_the_incident_page(stack, link)
    (posted,) = await posts(slack, "/hook", 1)
    assert posted["text"].startswith("[TEST] Incident opened") and link in posted["text"]
    block_text = str(posted["blocks"])
    assert "inv_alert" in block_text and "failed_outcome" in block_text and link in block_text

    assert (await api.result("inv_alert", "succeeded"))[0] == 202  # late success resolves the incident
    resolved = (await mails(smtp, 2))[1]
    assert resolved["Subject"].startswith(f"[TEST] Incident resolved: {name} (test)")
    assert "inv_alert" in resolved["Subject"] and "outcome_succeeded" in parts(resolved)["text/plain"]
    assert (await posts(slack, "/hook", 2))[1]["text"].startswith("[TEST] Incident resolved")

    await asyncio.sleep(3)  # redelivery, the next poll: nothing more goes out
    assert len(smtp.messages) == 2 and len(slack.posts("/hook")) == 2
    rows = await notification_rows(database_url)
    assert sorted((r["event_type"], r["status"], r["attempts"]) for r in rows) == [
        ("opened", "sent", 1), ("opened", "sent", 1), ("resolved", "sent", 1), ("resolved", "sent", 1)]


async def test_kill_9_of_the_alerts_sink_neither_resends_nor_loses_an_alert(
        api: Api, operator_api: Api, project: ProjectKey, smtp: Mailbox, slack: SlackHook, stack: Stack,
        database_url: str) -> None:
    await add_destination(operator_api, project.project_id, "email", "ops@example.com")
    await add_destination(operator_api, project.project_id, "slack", slack.base_url + "/hook")
    slack.scripts["/hook"] = [500]  # the Slack alert is claimed and waits for its retry
    await open_incident(api, "inv_kill")
    await mails(smtp, 1)
    await posts(slack, "/hook", 1)

    sink = stack.sinks["alerts"]
    sink.kill()
    await asyncio.sleep(2)  # the retry falls due while no sink runs
    assert len(slack.posts("/hook")) == 1
    sink.start()
    await asyncio.to_thread(sink.wait_ready, stack.sink_urls["alerts"] + "/readyz")

    await posts(slack, "/hook", 2)
    await asyncio.sleep(3)
    assert len(smtp.messages) == 1 and len(slack.posts("/hook")) == 2
    rows = await notification_rows(database_url)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 1), ("sent", 2)]


async def test_a_send_cut_off_by_kill_9_is_recorded_as_interrupted_and_made_again(
        api: Api, operator_api: Api, project: ProjectKey, slack: SlackHook, stack: Stack,
        database_url: str) -> None:
    """The Slack-like receiver holds the first POST open and the alerts sink is killed during it:
    the send was on record before it went out, and after the lease the restarted sink records it
    as interrupted and sends the alert again. At least once; nothing unrecorded, nothing more."""
    await add_destination(operator_api, project.project_id, "slack", slack.base_url + "/hook")
    release = slack.held["/hook"] = asyncio.Event()
    await open_incident(api, "inv_cut")
    await posts(slack, "/hook", 1)
    rows = await notification_rows(database_url)
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 1)]
    (under_way,) = await attempt_rows(database_url)
    assert (under_way.number, under_way.error, under_way.finished_at) == (1, None, None)

    sink = stack.sinks["alerts"]
    sink.kill()
    release.set()
    sink.start()
    await asyncio.to_thread(sink.wait_ready, stack.sink_urls["alerts"] + "/readyz")

    await posts(slack, "/hook", 2, timeout=LEASE_SECONDS + 30)
    await asyncio.sleep(3)
    first_post, second_post = slack.posts("/hook")
    assert first_post == second_post
    rows = await notification_rows(database_url)
    assert [(r["status"], r["attempts"], r["last_error"]) for r in rows] == [("sent", 2, None)]
    first, second = await attempt_rows(database_url)
    assert (first.number, first.error) == (1, INTERRUPTED) and first.finished_at is not None
    assert (second.number, second.error) == (2, None) and second.finished_at is not None
    assert first.attempted_at < second.attempted_at


async def test_two_alerts_sink_replicas_send_each_alert_once(
        api: Api, operator_api: Api, project: ProjectKey, smtp: Mailbox, slack: SlackHook, stack: Stack,
        tmp_path: Path) -> None:
    port = free_port()
    replica = ManagedProcess("alerts-2", ["sink", "alerts"],
                             {**stack.env, "SENDPROMPTLY_SINK_METRICS_PORT": str(port)},
                             tmp_path / "alerts-2.log")
    replica.start()
    try:
        await asyncio.to_thread(replica.wait_ready, f"http://127.0.0.1:{port}/readyz")
        await add_destination(operator_api, project.project_id, "email", "ops@example.com")
        await add_destination(operator_api, project.project_id, "slack", slack.base_url + "/hook")
        references = [f"inv_replica_{n}" for n in range(6)]
        await asyncio.gather(*(open_incident(api, reference) for reference in references))
        await mails(smtp, 6)
        await posts(slack, "/hook", 6)
        await asyncio.sleep(3)
    finally:
        replica.stop()
    subjects = sorted(message["Subject"] for message in smtp.messages)
    assert len(subjects) == 6 and all(any(r in s for s in subjects) for r in references)
    assert len(slack.posts("/hook")) == 6


async def test_slack_410_is_recorded_on_the_destination_and_500_is_retried(
        api: Api, operator_api: Api, project: ProjectKey, slack: SlackHook, database_url: str) -> None:
    gone = await add_destination(operator_api, project.project_id, "slack", slack.base_url + "/gone")
    flaky = await add_destination(operator_api, project.project_id, "slack", slack.base_url + "/flaky")
    slack.scripts = {"/gone": [410, 410, 410], "/flaky": [500]}
    await open_incident(api, "inv_slack")

    found = await eventually(lambda: destinations_of(operator_api, project.project_id),
                             lambda d: d[gone["id"]]["last_failure"] is not None)
    assert "410" in found[gone["id"]]["last_failure"] and found[gone["id"]]["failed_at"]
    assert found[flaky["id"]]["last_failure"] is None
    await posts(slack, "/flaky", 2)
    await asyncio.sleep(3)
    assert len(slack.posts("/gone")) == 1 and len(slack.posts("/flaky")) == 2
    rows = {r["destination_id"]: r for r in await notification_rows(database_url)}
    assert (rows[gone["id"]]["status"], rows[gone["id"]]["attempts"]) == ("failed", 1)
    assert (rows[flaky["id"]]["status"], rows[flaky["id"]]["attempts"]) == ("sent", 2)


async def test_the_test_alert_endpoint_sends_now_and_is_audited(
        operator_api: Api, project: ProjectKey, smtp: Mailbox, slack: SlackHook) -> None:
    base = f"/api/v1/projects/{project.project_id}/alert-destinations"
    mail = await add_destination(operator_api, project.project_id, "email", "ops@example.com")
    status, answer, _ = await operator_api.send("POST", f"{base}/{mail['id']}/test", idempotency_key="t1")
    assert status == 200 and answer["outcome"] == "sent" and answer["destination"]["id"] == mail["id"]
    (message,) = smtp.messages
    assert message["Subject"].startswith("[TEST] Test alert: ")
    assert set(parts(message)) == {"text/plain", "text/html"}
    status, _, headers = await operator_api.send("POST", f"{base}/{mail['id']}/test", idempotency_key="t1")
    assert status == 200 and headers["Idempotent-Replayed"] == "true" and len(smtp.messages) == 1

    gone = await add_destination(operator_api, project.project_id, "slack", slack.base_url + "/gone")
    slack.scripts["/gone"] = [410]
    status, problem, headers = await operator_api.send("POST", f"{base}/{gone['id']}/test")
    assert status == 502 and headers["Content-Type"].startswith("application/problem+json")
    assert "410" in problem["detail"]
    assert (await destinations_of(operator_api, project.project_id))[gone["id"]]["last_failure"]

    status, _, _ = await operator_api.send("POST", f"{base}/dst_nothere/test")
    assert status == 404
    entries = await eventually(lambda: operator_api.get(f"/api/v1/projects/{project.project_id}/audit-log"),
                               lambda got: sum(e["action"] == "destination.tested"
                                               for e in got[1]["items"]) == 2)
    tested = [e["data"] for e in entries[1]["items"] if e["action"] == "destination.tested"]
    assert [t["outcome"] for t in tested] == ["failed", "sent"]


async def test_a_repair_callback_that_runs_out_of_retries_is_alerted_once(
        api: Api, operator_api: Api, project: ProjectKey, smtp: Mailbox, slack: SlackHook) -> None:
    await add_destination(operator_api, project.project_id, "email", "ops@example.com")
    incident = await open_incident(api, "inv_exhausted")
    await mails(smtp, 1)  # the incident's own alert
    # The webhook peer doubles as the project's repair receiver: 500 twice uses up a 1-step schedule.
    slack.scripts["/repair"] = [500, 500]
    await set_callback(operator_api, project.project_id, slack.base_url + "/repair")
    replay_id = await reprocess(operator_api, incident["id"])

    gave_up = (await mails(smtp, 2))[1]
    assert gave_up["Subject"].startswith("[TEST] Repair callback gave up: ")
    assert "inv_exhausted" in gave_up["Subject"]
    text = parts(gave_up)["text/plain"]
    assert replay_id in text and "HTTP 500" in text and f"{CONSOLE}/incidents/{incident['id']}" in text
    await asyncio.sleep(6)  # more scans of callback_deliveries than one: still one alert
    assert len(smtp.messages) == 2 and len(slack.posts("/repair")) == 2
