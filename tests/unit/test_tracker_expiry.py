"""The tracker's side of a batch of due deadlines, on an injected clock: each named flow still
pending opens its timeout incident, every other flow is left as it is, a bad batch is a dead letter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from agents import flow as machine
from agents.projects import ProjectDirectory
from agents.tracker import FlowTracker, Incoming, Outcome, TrackerTopics
from topics import DeadlineBatch, IncidentEvent, Receipt, Result, encode, flow_key

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TOPICS = TrackerTopics(receipts="receipts", results="results", incidents="incidents", deadlines="deadlines")


def stored(reference: str, *, succeeded: bool = False) -> dict[str, Any]:
    receipt = Receipt(project_id="prj_a", idempotency_key=f"r-{reference}", reference=reference,
                      event_type="invoice.paid", effect_type="grant_access", received_at=T0,
                      timeout_seconds=60)
    state = machine.on_receipt(machine.FlowState(), receipt, mode="live", project_timeout_minutes=30,
                               now=T0).state
    if succeeded:
        result = Result(project_id="prj_a", idempotency_key=f"s-{reference}", reference=reference,
                        status="succeeded", received_at=T0 + timedelta(seconds=5))
        state = machine.on_result(state, result, now=T0 + timedelta(seconds=5)).state
    return machine.state_to_json(state)


def expire(now: datetime, message: Incoming,
           load: Callable[[bytes], dict[str, Any] | None]) -> list[tuple[bytes | None, Outcome]]:
    return asyncio.run(tracker(now).handle(message, load))


def tracker(now: datetime) -> FlowTracker:
    # A batch of deadlines never looks a project up, so the directory has no database behind it.
    return FlowTracker(topics=TOPICS, projects=cast(ProjectDirectory, None), partitions=4, clock=lambda: now)


def batch(value: bytes) -> Incoming:
    return Incoming(topic="deadlines", partition=3, offset=41, key=None, value=value)



def nothing_stored(key: bytes) -> None:
    return None

def test_each_pending_flow_of_a_batch_opens_its_timeout_incident_and_no_other_flow_changes() -> None:
    table = {flow_key("prj_a", "inv_due"): stored("inv_due"),
             flow_key("prj_a", "inv_paid"): stored("inv_paid", succeeded=True)}
    keys = (flow_key("prj_a", "inv_due"), flow_key("prj_a", "inv_paid"), flow_key("prj_a", "inv_gone"))
    message = batch(encode(DeadlineBatch(keys=keys)))
    outcomes = dict(expire(T0 + timedelta(seconds=61), message, table.get))

    due = outcomes[flow_key("prj_a", "inv_due")]
    assert due.flow is not None and due.flow.status is machine.Status.INCIDENT
    assert due.state is not None and machine.state_from_json(due.state).flow == due.flow
    (opened,) = [m for m in due.messages if isinstance(m, IncidentEvent)]
    assert (opened.type, opened.reason, opened.reference) == ("opened", "timeout", "inv_due")

    paid = outcomes[flow_key("prj_a", "inv_paid")]
    assert paid.state is None and paid.messages == [] and paid.flow is not None
    assert paid.flow.status is machine.Status.APPLIED  # the index forgets it
    gone = outcomes[flow_key("prj_a", "inv_gone")]
    assert (gone.state, gone.messages, gone.flow) == (None, [], None)


def test_a_flow_named_before_its_deadline_stays_pending() -> None:
    key = flow_key("prj_a", "inv_early")
    ((_, outcome),) = expire(T0 + timedelta(seconds=59), batch(encode(DeadlineBatch(keys=(key,)))),
                             {key: stored("inv_early")}.get)
    assert outcome.state is None and outcome.messages == []
    assert outcome.flow is not None and outcome.flow.status is machine.Status.PENDING


def test_a_batch_that_does_not_decode_is_one_dead_letter_with_its_exact_bytes() -> None:
    ((key, outcome),) = expire(T0, batch(b'{"schema": "deadline_batch.v1", "keys": []}'), nothing_stored)
    assert key is None and outcome.state is None and outcome.messages == []
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.reason.startswith("invalid_fields")
    assert (outcome.dead_letter.topic, outcome.dead_letter.partition, outcome.dead_letter.offset) == (
        "deadlines", 3, 41)
