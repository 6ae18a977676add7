"""Every accepted request against ground truth: each flow's final state and incident, its audited
transitions, each reprocess's callbacks and each incident's alerts. What is off becomes an anomaly
(lost, wrong or doubled) stamped with the moment it was decided, for the report to place in a
fault window.

How a result is judged: a signal reaches Kafka somewhere between the first try leaving the client
and the 202 coming back. A result whose window ends more than ``DEADLINE_TOLERANCE`` before the
deadline was on time; one whose window starts more than that after it was late; one in between
may be judged either way (the gateway's own stamp, which the agents use, lies inside the window)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from enum import Enum

from tests.chaos.ground_truth import FlowRecord, Outcome
from tests.chaos.observed import Observed, timestamp
from tests.chaos.receiver import CallbackSeen

DEADLINE_TOLERANCE = 1.0


class Kind(Enum):
    LOST = "lost"
    WRONG = "wrong"
    DOUBLED = "doubled"


@dataclass(frozen=True)
class Anomaly:
    kind: Kind
    at: float  # when the product decided it: the receipt's 202, the result or deadline, the reprocess
    reference: str
    what: str


@dataclass(frozen=True)
class Final:
    """A flow's final state: its status, and its incident's reason and status (None: no incident)."""

    status: str
    reason: str | None = None
    incident_status: str | None = None


APPLIED = Final("applied")
TIMED_OUT = Final("incident", "timeout", "open")
LATE_SUCCESS = Final("resolved", "timeout", "resolved")
FAILED = Final("incident", "failed_outcome", "open")


def allowed_finals(record: FlowRecord) -> set[Final]:
    deadline, result = record.deadline, record.result
    assert deadline is not None
    if record.plan.outcome is Outcome.NONE or result is None:
        return {TIMED_OUT}
    succeeded = record.plan.outcome is Outcome.SUCCEEDED
    on_time, late = (APPLIED, LATE_SUCCESS) if succeeded else (FAILED, TIMED_OUT)
    if result.accepted_at is None:
        return {on_time, late, TIMED_OUT}  # never acknowledged: it may or may not have landed
    if result.accepted_at + DEADLINE_TOLERANCE < deadline:
        return {on_time}
    if result.first_sent_at - DEADLINE_TOLERANCE > deadline:
        return {late}
    return {on_time, late}


def decided_at(record: FlowRecord) -> float:
    deadline = record.deadline
    assert deadline is not None
    accepted = record.result.accepted_at if record.result else None
    return min(deadline, accepted if accepted is not None else math.inf)


def reconcile(records: list[FlowRecord], observed: Observed, callbacks: list[CallbackSeen]) -> list[Anomaly]:
    anomalies: list[Anomaly] = []
    seen_by_replay: dict[str, list[CallbackSeen]] = {}
    for callback in callbacks:
        seen_by_replay.setdefault(callback.webhook_id, []).append(callback)
    for record in records:
        if record.receipt is None or record.receipt.accepted_at is None:
            continue  # never accepted: the report counts it as refused
        anomalies += _judge_flow(record, observed)
        anomalies += _judge_transitions(record, observed)
        anomalies += _judge_alerts(record, observed)
        if record.replay_id is not None:
            seen = seen_by_replay.get(record.replay_id, [])
            anomalies += _judge_replay(record, record.replay_id, observed, seen)
    return anomalies


def _judge_flow(record: FlowRecord, observed: Observed) -> list[Anomaly]:
    reference, at = record.plan.reference, decided_at(record)
    flow = observed.flows.get(reference)
    if flow is None:
        assert record.receipt is not None and record.receipt.accepted_at is not None
        return [Anomaly(Kind.LOST, record.receipt.accepted_at, reference,
                        "accepted receipt, no flow in the read model")]
    allowed = allowed_finals(record)
    incidents = observed.incidents.get(reference, [])
    problems: list[Anomaly] = []
    if abs((timestamp(flow["deadline"]) or 0.0) - (record.deadline or 0.0)) > 0.001:
        problems.append(Anomaly(Kind.WRONG, at, reference, f"deadline {flow['deadline']} is not the 202's"))
    if len(incidents) > 1:
        problems.append(Anomaly(Kind.DOUBLED, at, reference,
                                f"{len(incidents)} incidents: {[i['id'] for i in incidents]}"))
    expects_incident = all(final.reason is not None for final in allowed)
    if not incidents and expects_incident:
        problems.append(Anomaly(Kind.LOST, at, reference, f"no incident; flow is {flow['status']}, expected "
                                                          f"{_describe(allowed)}"))
        return problems
    incident = incidents[0] if incidents else None
    final = Final(flow["status"], *((incident["reason"], incident["status"]) if incident else (None, None)))
    if final not in allowed:
        problems.append(Anomaly(Kind.WRONG, at, reference, f"ended {final}, expected {_describe(allowed)}"))
    elif incident is not None and flow["incident_id"] != incident["id"]:
        problems.append(Anomaly(Kind.WRONG, at, reference,
                                f"flow names incident {flow['incident_id']}, not {incident['id']}"))
    return problems


def _judge_transitions(record: FlowRecord, observed: Observed) -> list[Anomaly]:
    reference, at = record.plan.reference, decided_at(record)
    flow = observed.flows.get(reference)
    if flow is None:
        return []  # already lost as a whole
    transitions = observed.transitions.get(reference, [])
    versions = Counter(version for version, _ in transitions)
    problems = [Anomaly(Kind.DOUBLED, at, reference, f"audit version {v} logged {n} times")
                for v, n in versions.items() if n > 1]
    missing = sorted(set(range(1, max([flow["version"], *versions]) + 1)) - set(versions))
    if missing:
        problems.append(Anomaly(Kind.LOST, at, reference, f"audit versions {missing} missing (read model at "
                                                          f"v{flow['version']}, logged {sorted(versions)})"))
    if max(versions, default=0) > flow["version"]:
        problems.append(Anomaly(Kind.LOST, at, reference, f"read model at v{flow['version']}, audit log at "
                                                          f"v{max(versions)}"))
    last = max(transitions, default=None)
    if last is not None and not missing and last[1] != f"flow.{flow['status']}":
        problems.append(Anomaly(Kind.WRONG, at, reference,
                                f"last audited {last[1]}, read model says {flow['status']}"))
    return problems


def _judge_alerts(record: FlowRecord, observed: Observed) -> list[Anomaly]:
    reference = record.plan.reference
    incidents = observed.incidents.get(reference, [])
    if len(incidents) != 1:
        return []  # the incident itself is already judged lost or doubled
    (incident,) = incidents
    at = timestamp(incident["opened_at"]) or decided_at(record)
    events = ["opened"] + (["resolved"] if incident["status"] == "resolved" else [])
    problems = []
    for event in events:
        sent = observed.alerts[(reference, event)]
        # Alerts are at least once: a send cut off by a kill -9 is made again as the next attempt,
        # and both are on record. A mail for which no attempt was recorded is a doubled one.
        recorded = observed.alert_attempts[(reference, event)]
        if sent == 0:
            problems.append(Anomaly(Kind.LOST, at, reference, f"no '{event}' alert for {incident['id']}"))
        elif sent > max(1, recorded):
            problems.append(Anomaly(Kind.DOUBLED, at, reference, f"{sent} '{event}' alerts for "
                                    f"{incident['id']}, {recorded} sends on record"))
    return problems


def _judge_replay(record: FlowRecord, replay_id: str, observed: Observed,
                  seen: list[CallbackSeen]) -> list[Anomaly]:
    reference = record.plan.reference
    assert record.reprocess is not None and record.reprocess.accepted_at is not None
    at = record.reprocess.accepted_at
    delivery = observed.deliveries.get(replay_id)
    if delivery is None or delivery["status"] != "delivered":
        state = "no delivery" if delivery is None else f"delivery {delivery['status']}"
        return [Anomaly(Kind.LOST, at, reference, f"replay {replay_id}: {state}, receiver saw "
                                                  f"{[c.attempt for c in seen]}")]
    recorded = {row["attempt"]: row for row in observed.attempts.get(replay_id, [])}
    problems = []
    if sorted(recorded) != list(range(1, len(recorded) + 1)):
        problems.append(Anomaly(Kind.LOST, at, reference,
                                f"replay {replay_id}: attempts recorded {sorted(recorded)}"))
    if observed.replay_attempts.get(replay_id) != len(recorded):
        shown = observed.replay_attempts.get(replay_id)
        problems.append(Anomaly(Kind.WRONG, at, reference,
                                f"replay {replay_id}: {len(recorded)} attempts, incident shows {shown}"))
    received = Counter(c.attempt for c in seen)
    problems += [Anomaly(Kind.DOUBLED, at, reference,
                         f"replay {replay_id}: attempt {n} received {count} times")
                 for n, count in received.items() if count > 1]
    problems += [Anomaly(Kind.LOST, at, reference, f"replay {replay_id}: attempt {n} received, not recorded")
                 for n in received if n not in recorded]
    delivered = [n for n, row in recorded.items() if row["http_status"] == 200]
    if delivered and any(n > min(delivered) for n in received):
        problems.append(Anomaly(Kind.DOUBLED, at, reference, f"replay {replay_id}: sent again after attempt "
                                                              f"{min(delivered)} was answered 200"))
    if not seen:
        problems.append(Anomaly(Kind.LOST, at, reference,
                                f"replay {replay_id}: delivered, receiver saw nothing"))
    siblings = next((replays for replays in observed.replays_by_incident.values() if replay_id in replays),
                    [])
    if len(siblings) > 1:
        problems.append(Anomaly(Kind.DOUBLED, at, reference, f"one reprocess, replays {sorted(siblings)}"))
    return problems


def _describe(allowed: set[Final]) -> str:
    return " or ".join(sorted(str(final) for final in allowed))
