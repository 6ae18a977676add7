"""Operators can investigate (issue #11), on the real stack: a failed result's detail is kept on the
flow and the incident and shown in the alert; the incident lists its alerts with every send and its
replays with every callback attempt and the next retry; an operator looks the flow up by reference
with its whole timeline, in the API and the CLI; alert sends are in the audit log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from harness.stack import SINK_NAMES, Stack
from tests.conftest import ProjectKey
from tests.support.alert_peers import Mailbox, mails, parts
from tests.support.api import Api, eventually
from tests.support.cli import Cli
from tests.support.operator_actions import add_destination, incident_path, reprocess, set_callback

pytestmark = pytest.mark.e2e

# Long enough that the replay's second attempt is still ahead when the test reads it.
CALLBACK_RETRY_SECONDS = 300
EMAIL = "ops@example.com"


@pytest.fixture
def stack(stack_factory, smtp: Mailbox) -> Stack:
    return stack_factory(sinks=SINK_NAMES, SENDPROMPTLY_SMTP_URL=smtp.url,
                         SENDPROMPTLY_CALLBACK_RETRY_SCHEDULE=f"{CALLBACK_RETRY_SECONDS},1")


async def failed_flow(api: Api, reference: str, detail: str) -> dict[str, Any]:
    assert (await api.receipt(reference))[0] == 202
    assert (await api.result(reference, "failed", detail=detail))[0] == 202
    _, flow = await eventually(lambda: api.flow(reference), lambda answer: "incident" in answer[1])
    return flow


async def timeline_of(operator_api: Api, project_id: str, reference: str, *actions: str) -> dict[str, Any]:
    """The operator's flow lookup once its timeline shows every one of ``actions`` (the audit sink
    appends within seconds)."""
    path = f"/api/v1/projects/{project_id}/flows/{reference}"
    _, found = await eventually(
        lambda: operator_api.get(path),
        lambda answer: answer[0] == 200 and set(actions) <= {e["action"] for e in answer[1]["timeline"]},
        timeout=30)
    return found


async def test_an_operator_investigates_a_failed_result_from_alert_to_timeline(
        api: Api, operator_api: Api, project: ProjectKey, smtp: Mailbox, cli: Cli) -> None:
    destination = await add_destination(operator_api, project.project_id, "email", EMAIL)
    flow = await failed_flow(api, "inv_locked", "db locked")
    incident = flow["incident"]
    assert (flow["detail"], incident["detail"]) == ("db locked", "db locked")

    (mail,) = await mails(smtp, 1)
    assert all("db locked" in text for text in parts(mail).values())

    await set_callback(operator_api, project.project_id)  # nothing listens there: the attempt fails
    replay_id = await reprocess(operator_api, incident["id"])

    def investigated(answer: tuple[int, dict[str, Any]]) -> bool:
        doc = answer[1]
        sent = [alert for alert in doc["alerts"] if alert["status"] == "sent"]
        attempts = doc["replays"][0]["callback_attempts"] if doc["replays"] else []
        return bool(sent) and bool(attempts) and "finished_at" in attempts[0]

    _, read = await eventually(lambda: operator_api.get(incident_path(incident["id"])), investigated)
    (alert,) = read["alerts"]
    assert {k: alert[k] for k in ("destination_id", "destination_type", "event", "status", "attempts")} == {
        "destination_id": destination["id"], "destination_type": "email", "event": "opened", "status": "sent",
        "attempts": 1}
    (send,) = alert["sends"]
    assert (send["attempt"], send["outcome"]) == (1, "sent") and "error" not in send
    (replay,) = read["replays"]
    (attempt,) = replay["callback_attempts"]
    assert replay["replay_id"] == replay_id and "error" in attempt and "http_status" not in attempt
    assert replay["delivery_status"] == "pending" and replay["next_attempt_at"] > attempt["attempted_at"]
    assert read["detail"] == "db locked"

    found = await timeline_of(operator_api, project.project_id, "inv_locked",
                              "flow.pending", "flow.incident", "incident.reprocess_requested",
                              "callback.attempted", "alert.sent")
    assert found["detail"] == "db locked" and found["incident"]["id"] == incident["id"]
    transitions = [(e["action"], e["status"], e["previous_status"], e["cause"])
                   for e in found["timeline"] if e["action"].startswith("flow.")]
    assert transitions == [("flow.pending", "pending", None, "receipt"),
                           ("flow.incident", "incident", "pending", "failed_outcome")]
    times = [entry["occurred_at"] for entry in found["timeline"]]
    assert times == sorted(times)
    (sent_entry,) = [e for e in found["timeline"] if e["action"] == "alert.sent"]
    assert sent_entry["target"] == incident["id"] and sent_entry["actor"] == "system:alerts"
    assert {k: sent_entry["data"][k] for k in ("destination_id", "incident_id", "attempt", "error")} == {
        "destination_id": destination["id"], "incident_id": incident["id"], "attempt": 1, "error": None}
    assert EMAIL not in str(sent_entry) and "db locked" not in str(sent_entry), "never the target or text"

    shown = cli.ok("flows", "show", project.project_id, "inv_locked").out
    assert re.search(r"^detail\s+db locked$", shown, re.MULTILINE)
    assert "flow.incident incident (from pending, cause failed_outcome)" in shown
    assert cli.json("flows", "show", project.project_id, "inv_locked") == await timeline_of(
        operator_api, project.project_id, "inv_locked")
    shown = cli.ok("incidents", "show", incident["id"]).out
    assert re.search(rf"^alert\s+opened to email {destination['id']}: sent, 1 sends$", shown, re.MULTILINE)
    assert re.search(rf"^replay\s+{replay_id} .*; delivery pending, next attempt \S+$", shown, re.MULTILINE)
    assert re.search(r"^  attempt\s+1 at \S+: no answer( in \d+ ms)? \(.+\)$", shown, re.MULTILINE)
    assert re.search(r"^detail\s+db locked$", shown, re.MULTILINE)
