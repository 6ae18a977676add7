"""The flow tracker: the thin adapter between Kafka messages and the state machine in ``agents.flow``.

It decodes and validates each message (receipts, results, operator incident events, batches of
due deadlines), runs one step of the state machine per flow on its stored state and returns what
to store and what to publish. Anything it cannot use becomes a dead letter with a reason instead of an
exception, so one bad message never stalls a partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents import flow as machine
from agents import metrics
from agents.outputs import ACTOR, to_message
from agents.projects import ProjectDirectory
from topics import (
    AuditEvent,
    DeadLetter,
    DeadlineBatch,
    IncidentEvent,
    Receipt,
    Result,
    SchemaError,
    decode,
    flow_key,
)


@dataclass(frozen=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Outcome:
    """What one message led to: the new state to store (None: leave it), the messages to publish,
    and the flow as it now stands (for the deadline index)."""

    state: dict[str, Any] | None
    messages: list[AuditEvent | IncidentEvent]
    flow: machine.Flow | None = None
    dead_letter: DeadLetter | None = None


@dataclass(frozen=True)
class TrackerTopics:
    receipts: str
    results: str
    incidents: str
    deadlines: str


class FlowTracker:
    CONSUMER = "agents.flow_tracker"

    def __init__(self, *, topics: TrackerTopics, projects: ProjectDirectory,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._topics = topics
        self._projects = projects
        self._clock = clock

    async def handle(self, message: Incoming,
                     load: Callable[[bytes], dict[str, Any] | None]) -> list[tuple[bytes | None, Outcome]]:
        """Each flow ``message`` concerns, by key, with its outcome: the one flow of a receipt, result
        or incident event, or every flow a batch of due deadlines names. ``load`` reads a flow's
        stored state, only when the message can change it."""
        if message.topic == self._topics.deadlines:
            return self._expire(message, load)
        return [(message.key, await self._one_flow(message, load))]

    async def _one_flow(self, message: Incoming, load: Callable[[bytes], dict[str, Any] | None]) -> Outcome:
        now = self._clock()
        try:
            if message.topic in (self._topics.receipts, self._topics.results):
                state = _stored_state(message, load)
                step = await self._signal(message, state, now)
            elif message.topic == self._topics.incidents:
                if not self._is_manual_resolution(message):
                    return Outcome(state=None, messages=[])
                state = _stored_state(message, load)
                step = machine.on_operator_resolve(state, now=now)
            else:
                raise SchemaError("unexpected_topic", f"the tracker does not read {message.topic}")
        except SchemaError as exc:
            return self._dead(message, f"{exc.reason}: {exc.detail}", now)
        return _outcome(state, step, now)

    def _expire(self, message: Incoming,
                load: Callable[[bytes], dict[str, Any] | None]) -> list[tuple[bytes | None, Outcome]]:
        """Each named flow that is still pending opens its timeout incident; a batch that does not
        decode is one dead letter, keyed by the message's own key."""
        now = self._clock()
        try:
            batch = decode(DeadlineBatch, message.value)
        except SchemaError as exc:
            return [(message.key, self._dead(message, f"{exc.reason}: {exc.detail}", now))]
        outcomes: list[tuple[bytes | None, Outcome]] = []
        for key in batch.keys:
            state = machine.state_from_json(load(key))
            outcomes.append((key, _outcome(state, machine.on_deadline(state, now=now), now)))
        return outcomes

    async def _signal(self, message: Incoming, state: machine.FlowState,
                      now: datetime) -> machine.Step | None:
        kind = "receipt" if message.topic == self._topics.receipts else "result"
        signal: Receipt | Result = (
            decode(Receipt, message.value) if kind == "receipt" else decode(Result, message.value)
        )
        _require_flow_key(message, signal.project_id, signal.reference)
        project = await self._projects.get(signal.project_id)
        if project is None:
            raise SchemaError("unknown_project", f"{signal.project_id} does not exist")
        remembered = machine.remember(state, signal.idempotency_key, now)
        if remembered is None:
            metrics.DUPLICATES.labels(kind).inc()
            return None
        metrics.JOIN_LATENCY.labels(kind).observe(max(0.0, (now - signal.received_at).total_seconds()))
        if isinstance(signal, Receipt):
            return machine.on_receipt(remembered, signal, mode=signal.mode or project.mode,
                                      project_timeout_minutes=project.timeout_minutes, now=now)
        return machine.on_result(remembered, signal, now=now)

    @staticmethod
    def _is_manual_resolution(message: Incoming) -> bool:
        event = decode(IncidentEvent, message.value)
        _require_flow_key(message, event.project_id, event.reference)
        # Our own events come back on this topic too (one per incident opened or resolved), so
        # the flow's state is not even read for them; only an operator's manual resolution
        # changes the flow.
        return event.actor != ACTOR and event.type == "resolved" and event.resolution == "manual"

    def _dead(self, message: Incoming, reason: str, now: datetime) -> Outcome:
        letter = DeadLetter.of(
            topic=message.topic, partition=message.partition, offset=message.offset, key=message.key,
            value=message.value, reason=reason, consumer=self.CONSUMER, failed_at=now,
        )
        return Outcome(state=None, messages=[], dead_letter=letter)


def _stored_state(message: Incoming, load: Callable[[bytes], dict[str, Any] | None]) -> machine.FlowState:
    return machine.state_from_json(load(message.key) if message.key else None)


def _outcome(state: machine.FlowState, step: machine.Step | None, now: datetime) -> Outcome:
    if step is None or step.state == state:
        return Outcome(state=None, messages=[], flow=state.flow)
    _observe(step, now)
    return Outcome(state=machine.state_to_json(step.state),
                   messages=[to_message(e) for e in step.effects], flow=step.state.flow)


def _require_flow_key(message: Incoming, project_id: str, reference: str) -> None:
    # A mis-keyed message sits on the wrong partition for its flow; joining it there would split
    # one flow's state across two tasks.
    if message.key != flow_key(project_id, reference):
        raise SchemaError("key_mismatch", "the key must be '<project_id>:<reference>' of the value")


def _observe(step: machine.Step, now: datetime) -> None:
    for effect in step.effects:
        flow = effect.flow
        if isinstance(effect, machine.IncidentOpened):
            metrics.INCIDENTS_OPENED.labels(flow.incident_reason, flow.mode).inc()
            if flow.incident_reason == "timeout":
                metrics.DETECTION_LAG.observe(max(0.0, (now - flow.deadline).total_seconds()))
        elif isinstance(effect, machine.Transition) and flow.status is machine.Status.RESOLVED:
            metrics.INCIDENTS_RESOLVED.labels(flow.resolution, flow.mode).inc()
