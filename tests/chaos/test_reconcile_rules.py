"""The reconciler's rules on made-up outcomes: a suite that cannot see a lost, wrong or doubled
outcome would pass whatever the stack does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.chaos.ground_truth import Delivery, FlowPlan, FlowRecord, Outcome
from tests.chaos.observed import Observed
from tests.chaos.receiver import CallbackSeen
from tests.chaos.reconcile import APPLIED, LATE_SUCCESS, Kind, allowed_finals, reconcile

DEADLINE = 1_000.0


def _record(outcome: Outcome, result_window: tuple[float, float] | None = None, *,
            replay_id: str | None = None) -> FlowRecord:
    receipt = Delivery(first_sent_at=DEADLINE - 30, accepted_at=DEADLINE - 30,
                       answer={"received_at": datetime.fromtimestamp(DEADLINE - 30, UTC).isoformat(),
                               "timeout_seconds": 30})
    result = None if result_window is None else Delivery(*result_window)
    reprocess = None if replay_id is None else Delivery(DEADLINE - 20, DEADLINE - 20,
                                                        {"replay_id": replay_id})
    plan = FlowPlan("ref", outcome, 30, 1.0, reprocess=replay_id is not None)
    return FlowRecord(plan, receipt, result, reprocess)


def _observed(status: str, incidents: list[dict[str, Any]], versions: list[tuple[int, str]]) -> Observed:
    seen = Observed()
    seen.flows["ref"] = {"reference": "ref", "status": status,
                         "deadline": datetime.fromtimestamp(DEADLINE, UTC),
                         "incident_id": incidents[0]["id"] if incidents else None, "version": len(versions)}
    seen.incidents["ref"] = incidents
    seen.transitions["ref"] = versions
    for incident in incidents:
        seen.alerts[("ref", "opened")] += 1
        if incident["status"] == "resolved":
            seen.alerts[("ref", "resolved")] += 1
    return seen


def _incident(reason: str, status: str = "open", id_: str = "inc_1") -> dict[str, Any]:
    return {"id": id_, "reason": reason, "status": status,
            "opened_at": datetime.fromtimestamp(DEADLINE + 1, UTC)}


def _kinds(record: FlowRecord, observed: Observed, callbacks: list[CallbackSeen] | None = None) -> list[Kind]:
    return [anomaly.kind for anomaly in reconcile([record], observed, callbacks or [])]


def test_a_success_on_time_applied_and_audited_is_clean() -> None:
    record = _record(Outcome.SUCCEEDED, (DEADLINE - 28, DEADLINE - 27.9))
    assert _kinds(record, _observed("applied", [], [(1, "flow.pending"), (2, "flow.applied")])) == []


def test_a_missing_timeout_a_doubled_incident_and_an_audit_gap_are_seen() -> None:
    assert _kinds(_record(Outcome.NONE), _observed("pending", [], [(1, "flow.pending")])) == [Kind.LOST]
    doubled = _observed("incident", [_incident("timeout"), _incident("timeout", id_="inc_2")],
                        [(1, "flow.pending"), (2, "flow.incident")])
    assert Kind.DOUBLED in _kinds(_record(Outcome.NONE), doubled)
    gap = _observed("incident", [_incident("timeout")], [(1, "flow.pending"), (3, "flow.incident")])
    gap.flows["ref"]["version"] = 3
    assert _kinds(_record(Outcome.NONE), gap) == [Kind.LOST]


def test_an_incident_for_a_success_on_time_is_wrong() -> None:
    record = _record(Outcome.SUCCEEDED, (DEADLINE - 28, DEADLINE - 27.9))
    observed = _observed("resolved", [_incident("timeout", "resolved")],
                         [(1, "flow.pending"), (2, "flow.incident"), (3, "flow.resolved")])
    assert _kinds(record, observed) == [Kind.WRONG]


def test_a_result_accepted_across_the_deadline_may_be_judged_either_way() -> None:
    straddling = _record(Outcome.SUCCEEDED, (DEADLINE - 0.5, DEADLINE + 0.2))
    assert allowed_finals(straddling) == {APPLIED, LATE_SUCCESS}
    assert allowed_finals(_record(Outcome.SUCCEEDED, (DEADLINE + 1.5, DEADLINE + 2))) == {LATE_SUCCESS}


def test_a_callback_attempt_received_twice_or_not_recorded_is_seen() -> None:
    record = _record(Outcome.FAILED, (DEADLINE - 28, DEADLINE - 27.9), replay_id="rpl_1")
    observed = _observed("incident", [_incident("failed_outcome")],
                         [(1, "flow.pending"), (2, "flow.incident")])
    observed.deliveries["rpl_1"] = {"replay_id": "rpl_1", "status": "delivered", "attempts": 1}
    observed.attempts["rpl_1"] = [{"attempt": 1, "nonce": "n1", "http_status": 200}]
    observed.replays_by_incident["inc_1"] = ["rpl_1"]
    observed.replay_attempts["rpl_1"] = 1
    once = [CallbackSeen("rpl_1", 1, "n1", DEADLINE - 19)]
    assert _kinds(record, observed, once) == []
    twice = [*once, CallbackSeen("rpl_1", 1, "n1", DEADLINE - 18)]
    assert _kinds(record, observed, twice) == [Kind.DOUBLED]
    unrecorded = [*once, CallbackSeen("rpl_1", 2, "n2", DEADLINE - 18)]
    assert sorted(k.value for k in _kinds(record, observed, unrecorded)) == ["doubled", "lost"]


def test_an_alert_sent_again_is_fine_only_when_each_send_is_on_record() -> None:
    record = _record(Outcome.NONE)
    observed = _observed("incident", [_incident("timeout")], [(1, "flow.pending"), (2, "flow.incident")])
    observed.alerts[("ref", "opened")] = 2  # the first send was cut off by a kill -9, then made again
    observed.alert_attempts[("ref", "opened")] = 2
    assert _kinds(record, observed) == []
    observed.alert_attempts[("ref", "opened")] = 1  # one of the two mails is on record nowhere
    assert _kinds(record, observed) == [Kind.DOUBLED]
