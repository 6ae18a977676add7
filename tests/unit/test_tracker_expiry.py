"""The tracker's side of the deadline timer's batches, on an injected clock: each named flow still
pending opens its timeout incident, every other flow is left as it is, a bad batch is a dead letter;
a ``forget`` batch forgets the flows closed longer than the retention, and nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from agents import flow as machine
from agents import stored as documents
from agents.projects import ProjectDirectory
from agents.tracker import FlowTracker, Incoming, Outcome, TrackerTopics
from topics import AuditEvent, DeadlineBatch, IncidentEvent, Receipt, Result, encode, flow_key
from topics.fields import Mode, ResultStatus
from topics.messages import DeadlineAction, FlowStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TOPICS = TrackerTopics(receipts="receipts", results="results", incidents="incidents", deadlines="deadlines")
RETENTION = timedelta(days=35)


def stored(reference: str, *, succeeded: bool = False, mode: str = "live") -> dict[str, Any]:
    return documents.document({mode: state(reference, succeeded=succeeded, mode=mode)}, partition=3,
                              offsets={})


def state(reference: str, *, succeeded: bool = False, mode: str = "live") -> dict[str, Any]:
    receipt = Receipt(project_id="prj_a", idempotency_key=f"r-{reference}", reference=reference,
                      event_type="invoice.paid", effect_type="grant_access", received_at=T0,
                      timeout_seconds=60)
    flow_state = machine.on_receipt(machine.FlowState(), receipt, mode=Mode(mode), project_timeout_minutes=30,
                                    now=T0).state
    if succeeded:
        result = Result(project_id="prj_a", idempotency_key=f"s-{reference}", reference=reference,
                        status=ResultStatus.SUCCEEDED, received_at=T0 + timedelta(seconds=5))
        flow_state = machine.on_result(flow_state, result, now=T0 + timedelta(seconds=5)).state
    return machine.state_to_json(flow_state)


def expire(now: datetime, message: Incoming,
           load: Callable[[bytes], dict[str, Any] | None]) -> list[tuple[bytes | None, Outcome]]:
    return asyncio.run(tracker(now).handle(message, load))


def tracker(now: datetime) -> FlowTracker:
    # A batch of deadlines never looks a project up, so the directory has no database behind it.
    return FlowTracker(topics=TOPICS, projects=cast(ProjectDirectory, None), partitions=4,
                       retention=RETENTION, clock=lambda: now)


def batch(value: bytes) -> Incoming:
    return Incoming(topic="deadlines", partition=3, offset=41, key=None, value=value)


def nothing_stored(key: bytes) -> None:
    return None


def live_flow(outcome: Outcome) -> machine.Flow | None:
    assert outcome.state is not None
    return machine.state_from_json(documents.states_of(outcome.state)["live"]).flow


def test_each_pending_flow_of_a_batch_opens_its_timeout_incident_and_no_other_flow_changes() -> None:
    table = {flow_key("prj_a", "inv_due"): stored("inv_due"),
             flow_key("prj_a", "inv_paid"): stored("inv_paid", succeeded=True)}
    keys = (flow_key("prj_a", "inv_due"), flow_key("prj_a", "inv_paid"), flow_key("prj_a", "inv_gone"))
    message = batch(encode(DeadlineBatch.of(keys)))
    outcomes = dict(expire(T0 + timedelta(seconds=61), message, table.get))

    due = outcomes[flow_key("prj_a", "inv_due")]
    flow = live_flow(due)
    assert flow is not None and flow.status is FlowStatus.INCIDENT
    assert due.indexed and due.deadline is None, "the index forgets it"
    (opened,) = [m for m in due.messages if isinstance(m, IncidentEvent)]
    assert (opened.type, opened.reason, opened.reference) == ("opened", "timeout", "inv_due")

    paid = outcomes[flow_key("prj_a", "inv_paid")]
    assert paid.state is None and paid.messages == []
    assert paid.indexed and paid.deadline is None, "the index forgets it"
    gone = outcomes[flow_key("prj_a", "inv_gone")]
    assert (gone.state, gone.messages, gone.indexed) == (None, [], False)


def test_a_flow_named_before_its_deadline_stays_pending() -> None:
    key = flow_key("prj_a", "inv_early")
    ((_, outcome),) = expire(T0 + timedelta(seconds=59), batch(encode(DeadlineBatch.of((key,)))),
                             {key: stored("inv_early")}.get)
    assert outcome.state is None and outcome.messages == []
    assert outcome.indexed and outcome.deadline == T0 + timedelta(seconds=60), "still watched"


def test_only_the_mode_whose_deadline_passed_opens_an_incident() -> None:
    key = flow_key("prj_a", "inv_1")
    test_later = machine.state_to_json(machine.on_receipt(
        machine.FlowState(), Receipt(project_id="prj_a", idempotency_key="t", reference="inv_1",
                                     event_type="invoice.paid", effect_type="grant_access",
                                     received_at=T0 + timedelta(seconds=30), timeout_seconds=60),
        mode=Mode.TEST, project_timeout_minutes=30, now=T0).state)
    doc = documents.document({"live": state("inv_1"), "test": test_later}, partition=3, offsets={})
    assert documents.pending_deadline(doc) == T0 + timedelta(seconds=60)
    message = batch(encode(DeadlineBatch.of((key,))))
    ((_, outcome),) = expire(T0 + timedelta(seconds=61), message, {key: doc}.get)
    (opened,) = [m for m in outcome.messages if isinstance(m, IncidentEvent)]
    assert opened.mode == "live"
    assert outcome.deadline == T0 + timedelta(seconds=90), "the test flow is still watched"


def forget(now: datetime, doc: dict[str, Any]) -> Outcome:
    key = flow_key("prj_a", "inv_1")
    message = batch(encode(DeadlineBatch.of((key,), action=DeadlineAction.FORGET)))
    ((_, outcome),) = expire(now, message, {key: doc}.get)
    return outcome


def test_a_forget_batch_forgets_closed_flows_after_the_retention_and_keeps_open_ones() -> None:
    closed_at = T0 + timedelta(seconds=5)
    doc = documents.document({"test": state("inv_1", succeeded=True, mode="test"), "live": state("inv_1")},
                             partition=3, offsets={})
    assert forget(closed_at + RETENTION - timedelta(seconds=1), doc).state is None, "not yet"

    outcome = forget(closed_at + RETENTION, doc)
    assert not outcome.forget and outcome.state is not None
    # Once the state is written without it, a replay could not announce the forgotten flow again.
    assert outcome.messages_first
    assert set(documents.states_of(outcome.state)) == {"live"}, "the pending live flow is kept"
    (event,) = outcome.messages
    assert isinstance(event, AuditEvent) and event.action == "flow.forgotten"
    assert event.data == {"reference": "inv_1", "mode": "test", "cycle": 1,
                          "received_at": "2026-01-01T12:00:00.000Z"}


def test_a_key_whose_every_flow_is_forgotten_is_deleted() -> None:
    outcome = forget(T0 + timedelta(seconds=5) + RETENTION, stored("inv_1", succeeded=True))
    assert outcome.forget and outcome.indexed and outcome.deadline is None and outcome.messages_first
    assert [m.action for m in outcome.messages if isinstance(m, AuditEvent)] == ["flow.forgotten"]


def test_a_batch_that_does_not_decode_is_one_dead_letter_with_its_exact_bytes() -> None:
    ((key, outcome),) = expire(T0, batch(b'{"schema": "deadline_batch.v1", "keys": []}'), nothing_stored)
    assert key is None and outcome.state is None and outcome.messages == []
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.reason.startswith("invalid_fields")
    assert (outcome.dead_letter.topic, outcome.dead_letter.partition, outcome.dead_letter.offset) == (
        "deadlines", 3, 41)
