"""The tracker after a crash and with misrouted signals, on an injected clock and a dict for a table.

A kill -9 can land after a flow's new state was stored but before its outputs reached Kafka; the
message is then consumed again. The tracker must publish the flow's outputs again, exactly as the
first time, instead of taking the message for a duplicate. A signal on the wrong partition for its
key must go to the right one, never join there.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from aiokafka.partitioner import murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.projects import ProjectDirectory
from agents.tracker import FlowTracker, Incoming, Outcome, TrackerTopics
from store.projects import Project
from topics import AuditEvent, DeadlineBatch, IncidentEvent, Receipt, Result, encode, flow_key
from topics.fields import Mode, ResultStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PARTITIONS = 4
TOPICS = TrackerTopics(receipts="receipts", results="results", incidents="incidents", deadlines="deadlines")
PROJECT = Project(id="prj_a", name="a", mode=Mode.LIVE, timeout_minutes=30, snapshots_enabled=False,
                  repair_callback_url=None, created_at=T0)


class OneProject:
    """The project directory's one method, answering for PROJECT without a database."""

    async def get(self, project_id: str) -> Project | None:
        return PROJECT if project_id == PROJECT.id else None


def tracker(now: datetime) -> FlowTracker:
    return FlowTracker(topics=TOPICS, projects=cast(ProjectDirectory, OneProject()), partitions=PARTITIONS,
                       retention=timedelta(days=35), clock=lambda: now)


def right_partition(reference: str) -> int:
    return (murmur2(flow_key(PROJECT.id, reference)) & 0x7FFFFFFF) % PARTITIONS


def receipt(reference: str, offset: int, *, partition: int | None = None, at: datetime = T0,
            key: str | None = None, mode: str | None = None) -> Incoming:
    value = Receipt(project_id=PROJECT.id, idempotency_key=key or f"r-{reference}", reference=reference,
                    event_type="invoice.paid", effect_type="grant_access", received_at=at, timeout_seconds=60,
                    mode=None if mode is None else Mode(mode))
    return Incoming(topic="receipts", offset=offset, key=flow_key(PROJECT.id, reference), value=encode(value),
                    partition=right_partition(reference) if partition is None else partition)


def result(reference: str, offset: int, status: str, at: datetime, *, mode: str | None = None) -> Incoming:
    value = Result(project_id=PROJECT.id, idempotency_key=f"{status}-{reference}-{offset}",
                   reference=reference, status=ResultStatus(status), received_at=at,
                   mode=None if mode is None else Mode(mode))
    return Incoming(topic="results", partition=right_partition(reference), offset=offset,
                    key=flow_key(PROJECT.id, reference), value=encode(value))


def deadlines(reference: str, offset: int) -> Incoming:
    return Incoming(topic="deadlines", partition=right_partition(reference), offset=offset, key=None,
                    value=encode(DeadlineBatch.of((flow_key(PROJECT.id, reference),))))


def run(table: dict[bytes, dict[str, Any]], message: Incoming, now: datetime) -> list[Outcome]:
    """Handle ``message`` as the agent does: store each new state in ``table``."""
    outcomes = asyncio.run(tracker(now).handle(message, table.get))
    for key, outcome in outcomes:
        if key is not None and outcome.state is not None:
            table[key] = outcome.state
    return [outcome for _, outcome in outcomes]


def published(outcomes: list[Outcome]) -> list[AuditEvent | IncidentEvent]:
    return [message for outcome in outcomes for message in outcome.messages]


def test_a_replayed_message_publishes_the_outputs_lost_with_the_crash_again() -> None:
    table: dict[bytes, dict[str, Any]] = {}
    first = published(run(table, receipt("inv_1", offset=7), T0))
    second = published(run(table, result("inv_1", 3, "failed", T0 + timedelta(seconds=2)),
                           T0 + timedelta(seconds=2)))
    assert [m.event_id for m in first + second] and isinstance(second[-1], IncidentEvent)

    # The crash lost both messages' outputs; both are consumed again against the stored state.
    again = run(table, receipt("inv_1", offset=7), T0 + timedelta(seconds=9))
    assert published(again) == first + second
    assert again[0].state == table[flow_key(PROJECT.id, "inv_1")], "stored again, for the changelog"
    assert published(run(table, result("inv_1", 3, "failed", T0 + timedelta(seconds=2)),
                         T0 + timedelta(seconds=9))) == first + second


def test_a_new_message_with_a_key_already_seen_is_still_a_duplicate() -> None:
    table: dict[bytes, dict[str, Any]] = {}
    run(table, receipt("inv_1", offset=7), T0)
    # The client's retry: the same idempotency key at a later offset changes and publishes nothing.
    assert published(run(table, receipt("inv_1", offset=8), T0 + timedelta(seconds=1))) == []


def test_a_replayed_deadline_batch_publishes_the_timeout_again() -> None:
    table: dict[bytes, dict[str, Any]] = {}
    run(table, receipt("inv_1", offset=0), T0)
    late = T0 + timedelta(seconds=61)
    opened = published(run(table, deadlines("inv_1", offset=5), late))
    assert [m.type for m in opened if isinstance(m, IncidentEvent)] == ["opened"]
    assert published(run(table, deadlines("inv_1", offset=5), late + timedelta(seconds=3)))[-2:] == opened
    # A later batch naming the flow again (a re-fire) changes nothing.
    assert published(run(table, deadlines("inv_1", offset=6), late + timedelta(seconds=10))) == []


def test_test_and_live_signals_of_one_reference_never_join() -> None:
    table: dict[bytes, dict[str, Any]] = {}
    run(table, receipt("inv_1", offset=0, mode="live"), T0)
    # A test-mode success for the same reference, even with the live receipt's idempotency key,
    # is neither a duplicate of it nor its result.
    at = T0 + timedelta(seconds=1)
    test_success = published(run(table, result("inv_1", 1, "succeeded", at, mode="test"), at))
    assert test_success == [], "held in test mode, waiting for a test receipt"
    test_receipt = published(run(table, receipt("inv_1", offset=2, mode="test", at=T0),
                                 T0 + timedelta(seconds=2)))
    assert [m.data["status"] for m in test_receipt if isinstance(m, AuditEvent)] == ["pending", "applied"]
    assert {m.data["mode"] for m in test_receipt if isinstance(m, AuditEvent)} == {"test"}
    timeout = published(run(table, deadlines("inv_1", offset=3), T0 + timedelta(seconds=61)))
    (opened,) = [m for m in timeout if isinstance(m, IncidentEvent)]
    assert (opened.mode, opened.reason) == ("live", "timeout"), "the live flow was never applied"


def test_a_replay_after_the_next_cycle_started_publishes_the_closed_cycles_outputs_again() -> None:
    table: dict[bytes, dict[str, Any]] = {}
    first = published(run(table, receipt("inv_1", offset=0), T0))
    first += published(run(table, result("inv_1", 1, "succeeded", T0 + timedelta(seconds=1)),
                           T0 + timedelta(seconds=1)))
    later = T0 + timedelta(minutes=5)
    second = published(run(table, receipt("inv_1", offset=2, at=later, key="r-again"), later))
    assert [m.data["cycle"] for m in second if isinstance(m, AuditEvent)] == [2]
    # A crash lost all of it: the closed first cycle's outputs come back too.
    again = published(run(table, result("inv_1", 1, "succeeded", T0 + timedelta(seconds=1)), later))
    assert all(m in again for m in first + second)


_step = st.sampled_from(["succeeded", "failed", "deadline", "receipt"])


@settings(max_examples=200)
@given(st.lists(_step, max_size=6), st.data())
def test_replaying_from_any_point_publishes_every_output_the_first_pass_did(
        steps: list[str], data: st.DataObject) -> None:
    # The log of one flow: its receipt, then results and deadline batches, each handled 30 s after
    # the one before. A crash rewinds the consumer to any earlier message with the state as stored,
    # and every message from there on is consumed again.
    log = [receipt("inv_1", offset=0)]
    for n, kind in enumerate(steps, 1):
        at = T0 + timedelta(seconds=30 * n)
        if kind == "deadline":
            log.append(deadlines("inv_1", n))
        elif kind == "receipt":  # the reference used again: a repeat, or the next cycle
            log.append(receipt("inv_1", n, at=at, key=f"r-{n}"))
        else:
            log.append(result("inv_1", n, kind, at))
    times = [T0 + timedelta(seconds=30 * n) for n in range(len(log))]
    table: dict[bytes, dict[str, Any]] = {}
    first_pass = [published(run(table, message, at)) for message, at in zip(log, times, strict=True)]
    stored = dict(table)
    rewind = data.draw(st.integers(0, len(log) - 1))
    replayed = [m for message, at in zip(log[rewind:], times[rewind:], strict=True)
                for m in published(run(table, message, at))]
    lost = [m for outputs in first_pass[rewind:] for m in outputs]
    assert all(m in replayed for m in lost if not _repeat(m)), (
        "every output from the rewind point on comes again, the same")
    # Repeated receipts come back as one event per cycle with the final count (the read model
    # keeps the greatest).
    repeats = [m for m in replayed if isinstance(m, AuditEvent) and _repeat(m)]
    assert all(any(r.data["cycle"] == m.data["cycle"] and r.data["receipts"] >= m.data["receipts"]
                   for r in repeats)
               for m in lost if isinstance(m, AuditEvent) and _repeat(m))
    assert table == stored, "replaying changes no state"


def _repeat(message: AuditEvent | IncidentEvent) -> bool:
    return isinstance(message, AuditEvent) and message.action == "flow.receipt_repeated"


def test_a_signal_on_the_wrong_partition_is_forwarded_to_its_own_and_joins_nothing() -> None:
    right = right_partition("inv_1")
    wrong = (right + 1) % PARTITIONS
    table: dict[bytes, dict[str, Any]] = {}
    (outcome,) = run(table, receipt("inv_1", offset=0, partition=wrong), T0)
    assert outcome.forward_to == right
    assert (outcome.state, outcome.messages, outcome.dead_letter) == (None, [], None)
    assert table == {}
