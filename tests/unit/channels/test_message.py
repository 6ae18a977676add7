"""What an alert says, whichever channel carries it: its facts and subject line."""

from __future__ import annotations

from channels.message import OPENED, RESOLVED, TEST, Alert, console_link, facts, subject

ALERT = Alert(kind=OPENED, project_id="prj_1", project_name="Billing", mode="test",
              occurred_at="2026-01-01T00:00:00Z", incident_id="inc_1", reference="inv_1",
              reason="failed_outcome", detail="db locked")


def test_the_detail_is_one_of_the_facts_and_old_stored_alerts_still_load() -> None:
    assert ("Detail", "db locked") in facts(ALERT)
    stored_before = {k: v for k, v in ALERT.to_dict().items() if k != "detail"}
    assert Alert.from_dict(stored_before).detail is None



def test_the_subject_names_the_event_the_project_and_what_is_known_marking_test_mode() -> None:
    assert subject(ALERT) == "[TEST] Incident opened: Billing (test), failed_outcome, reference inv_1"
    live_resolved = Alert(kind=RESOLVED, project_id="prj_1", project_name="Billing", mode="live",
                          occurred_at="2026-01-01T00:00:00Z")
    assert subject(live_resolved) == "Incident resolved: Billing (live)"


def test_facts_leave_out_what_is_unknown_and_a_test_alert_links_nowhere() -> None:
    test_alert = Alert(kind=TEST, project_id="prj_1", project_name="Billing", mode="test",
                       occurred_at="2026-01-01T00:00:00Z")
    assert facts(test_alert) == [("Project", "Billing (prj_1)"), ("Mode", "test"),
                                 ("When", "2026-01-01T00:00:00Z")]
    assert console_link(test_alert, "https://console.test/") is None
    assert console_link(ALERT, "https://console.test/") == "https://console.test/incidents/inc_1"
