"""What an alert says of a failed result's detail, in every channel, within each channel's limits."""

from __future__ import annotations

from sinks.channels.message import OPENED, Alert, facts
from sinks.channels.slack import MAX_FIELD_CHARS, payload

ALERT = Alert(kind=OPENED, project_id="prj_1", project_name="Billing", mode="test",
              occurred_at="2026-01-01T00:00:00Z", incident_id="inc_1", reference="inv_1",
              reason="failed_outcome", detail="db locked")


def test_the_detail_is_one_of_the_facts_and_old_stored_alerts_still_load() -> None:
    assert ("Detail", "db locked") in facts(ALERT)
    stored_before = {k: v for k, v in ALERT.to_dict().items() if k != "detail"}
    assert Alert.from_dict(stored_before).detail is None


def test_a_slack_field_is_cut_to_slacks_limit_never_inside_an_escape() -> None:
    long = Alert(**{**ALERT.to_dict(), "detail": "&<" * 1024})
    (detail,) = [f["text"] for f in payload(long, "https://console.test")["blocks"][1]["fields"]
                 if f["text"].startswith("*Detail*")]
    assert len(detail) <= MAX_FIELD_CHARS and detail.endswith("…")
    assert detail.removeprefix("*Detail*\n").removesuffix("…").replace("&amp;", "").replace("&lt;", "") == ""
    short = payload(ALERT, "https://console.test")["blocks"][1]["fields"]
    assert "*Detail*\ndb locked" in [f["text"] for f in short]
