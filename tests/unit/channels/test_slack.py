"""The Slack channel's message (text and blocks, escaped and cut to Slack's limits) and its rules
for a webhook URL."""

from __future__ import annotations

import pytest

from channels import TargetRules
from channels.message import OPENED, TEST, Alert
from channels.slack import KIND, MAX_FIELD_CHARS, MAX_FIELDS, payload
from common.targets import TargetError

ALERT = Alert(kind=OPENED, project_id="prj_1", project_name="Billing <EU>", mode="test",
              occurred_at="2026-01-01T00:00:00Z", incident_id="inc_1", reference="inv_1",
              reason="failed_outcome", detail="db locked")
LINK = "https://console.test/incidents/inc_1"
SUBJECT = "[TEST] Incident opened: Billing <EU> (test), failed_outcome, reference inv_1"


def test_the_text_is_the_escaped_subject_with_a_link_and_the_blocks_say_the_same() -> None:
    sent = payload(ALERT, "https://console.test/")
    assert sent["text"] == SUBJECT.replace("<EU>", "&lt;EU&gt;") + f" <{LINK}|Open the incident>"
    header, section, actions = sent["blocks"]
    # Plain text is not mrkdwn: the header needs no escaping.
    assert header["text"] == {"type": "plain_text", "text": SUBJECT}
    assert section["fields"][0] == {"type": "mrkdwn", "text": "*Project*\nBilling &lt;EU&gt; (prj_1)"}
    assert "*Detail*\ndb locked" in [field["text"] for field in section["fields"]]
    assert actions["elements"][0]["url"] == LINK


def test_an_alert_without_an_incident_has_no_link_or_button() -> None:
    test_alert = Alert(kind=TEST, project_id="prj_1", project_name="Billing", mode="test",
                       occurred_at="2026-01-01T00:00:00Z")
    sent = payload(test_alert, "https://console.test")
    assert sent["text"] == "[TEST] Test alert: Billing (test)"
    assert [block["type"] for block in sent["blocks"]] == ["header", "section"]


def test_a_slack_field_is_cut_to_slacks_limit_never_inside_an_escape() -> None:
    long = Alert(**{**ALERT.to_dict(), "detail": "&<" * 1024})
    (detail,) = [f["text"] for f in payload(long, "https://console.test")["blocks"][1]["fields"]
                 if f["text"].startswith("*Detail*")]
    assert len(detail) <= MAX_FIELD_CHARS and detail.endswith("…")
    assert detail.removeprefix("*Detail*\n").removesuffix("…").replace("&amp;", "").replace("&lt;", "") == ""


def test_at_most_slacks_number_of_fields_and_a_header_within_its_limit() -> None:
    everything = Alert(**{**ALERT.to_dict(), "project_name": "B" * 300, "resolution": "r",
                          "replay_id": "rpl_1", "error": "HTTP 500"})
    header, section, _ = payload(everything, "https://console.test")["blocks"]
    assert len(section["fields"]) == MAX_FIELDS
    assert len(header["text"]["text"]) == 150


async def test_a_webhook_needs_https_in_live_mode_and_a_public_host_unless_private_is_allowed() -> None:
    local = "http://127.0.0.1:9/hook"
    assert await KIND.check_target(local, TargetRules(live=False, allow_private=True)) == local
    with pytest.raises(TargetError, match="https"):
        await KIND.check_target(local, TargetRules(live=True, allow_private=True))
    with pytest.raises(TargetError):
        await KIND.check_target(local, TargetRules(live=False, allow_private=False))
    assert KIND.live_fault(local) == "must use https://"
    assert KIND.live_fault("https://hooks.slack.example/services/T/B/x") is None
