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

from aiokafka.partitioner import murmur2

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
    """What one message led to for one flow: the document to store (None: leave it), the messages
    to publish, and the flow as it now stands (for the deadline index). Or, instead, a dead letter,
    or the partition the message belongs on (it came on another: forward it there)."""

    state: dict[str, Any] | None
    messages: list[AuditEvent | IncidentEvent]
    flow: machine.Flow | None = None
    dead_letter: DeadLetter | None = None
    forward_to: int | None = None


@dataclass(frozen=True)
class TrackerTopics:
    receipts: str
    results: str
    incidents: str
    deadlines: str

    def kinds(self) -> dict[str, str]:
        """Each topic's name -> the short name a stored flow records its offsets under."""
        return {self.receipts: "receipts", self.results: "results", self.incidents: "incidents",
                self.deadlines: "deadlines"}


# Stored beside the machine's state: the flow's partition (the deadline index is rebuilt per
# partition) and, per input topic, the offset of the last message that changed the flow.
PARTITION_FIELD = "partition"
OFFSETS_FIELD = "offsets"


class FlowTracker:
    CONSUMER = "agents.flow_tracker"

    def __init__(self, *, topics: TrackerTopics, projects: ProjectDirectory, partitions: int,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._topics = topics
        self._kinds = topics.kinds()
        self._projects = projects
        self._partitions = partitions
        self._clock = clock

    async def handle(self, message: Incoming,
                     load: Callable[[bytes], dict[str, Any] | None]) -> list[tuple[bytes | None, Outcome]]:
        """Each flow ``message`` concerns, by key, with its outcome: the one flow of a receipt, result
        or incident event, or every flow a batch of due deadlines names. ``load`` reads a flow's
        stored document, only when the message can change it.

        A message that changed a flow before (its offset is not past the one the flow recorded) is
        a replay after a crash: the state was stored, but its outputs may never have reached Kafka.
        The flow's outputs are derived again from the stored state and published once more (their
        ids are deterministic, so every consumer drops what it has already), and the document is
        stored again so that the changelog surely holds it."""
        if message.topic == self._topics.deadlines:
            return self._expire(message, load)
        return [(message.key, await self._one_flow(message, load))]

    async def _one_flow(self, message: Incoming, load: Callable[[bytes], dict[str, Any] | None]) -> Outcome:
        now = self._clock()
        kind = self._kinds.get(message.topic)
        try:
            if kind is None or kind == "deadlines":
                raise SchemaError("unexpected_topic", f"the tracker does not read {message.topic} here")
            signal = _decode_for_flow(kind, message)
            if signal is None:  # our own incident events, read back: nothing for the flow
                return Outcome(state=None, messages=[])
            right_partition = self._partition_of(message.key)
            if right_partition != message.partition:
                return Outcome(state=None, messages=[], forward_to=right_partition)
            stored = load(message.key) if message.key else None
            if _changed_by(stored, kind, message.offset):
                return _again(stored)
            state = machine.state_from_json(stored)
            if isinstance(signal, IncidentEvent):
                step: machine.Step | None = machine.on_operator_resolve(state, now=now)
            else:
                step = await self._signal(signal, state, now)
        except SchemaError as exc:
            return self._dead(message, f"{exc.reason}: {exc.detail}", now)
        return _outcome(stored, state, step, now, kind, message)

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
            stored = load(key)
            if _changed_by(stored, "deadlines", message.offset):
                outcomes.append((key, _again(stored)))
                continue
            state = machine.state_from_json(stored)
            outcomes.append((key, _outcome(stored, state, machine.on_deadline(state, now=now), now,
                                           "deadlines", message)))
        return outcomes

    async def _signal(self, signal: Receipt | Result, state: machine.FlowState,
                      now: datetime) -> machine.Step | None:
        kind = "receipt" if isinstance(signal, Receipt) else "result"
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

    def _partition_of(self, key: bytes | None) -> int:
        """The partition every producer here puts ``key`` on: murmur2, as the Java client does."""
        return partition_of(key or b"", self._partitions)

    def dead(self, message: Incoming, reason: str) -> Outcome:
        """A dead letter for ``message``, for a failure outside the tracker's own checks."""
        return self._dead(message, reason, self._clock())

    def _dead(self, message: Incoming, reason: str, now: datetime) -> Outcome:
        letter = DeadLetter.of(
            topic=message.topic, partition=message.partition, offset=message.offset, key=message.key,
            value=message.value, reason=reason, consumer=self.CONSUMER, failed_at=now,
        )
        return Outcome(state=None, messages=[], dead_letter=letter)


def partition_of(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _decode_for_flow(kind: str, message: Incoming) -> Receipt | Result | IncidentEvent | None:
    """The message's signal, checked to be keyed by its own flow; None for an incident event the
    flow does not act on."""
    signal: Receipt | Result | IncidentEvent
    if kind == "receipts":
        signal = decode(Receipt, message.value)
    elif kind == "results":
        signal = decode(Result, message.value)
    else:
        signal = decode(IncidentEvent, message.value)
    # A mis-keyed message sits on the wrong partition for its flow; joining it there would split
    # one flow's state across two tasks.
    if message.key != flow_key(signal.project_id, signal.reference):
        raise SchemaError("key_mismatch", "the key must be '<project_id>:<reference>' of the value")
    if isinstance(signal, IncidentEvent) and not _is_manual_resolution(signal):
        return None
    return signal


def _is_manual_resolution(event: IncidentEvent) -> bool:
    # Our own events come back on this topic too (one per incident opened or resolved), so the
    # flow's state is not even read for them; only an operator's manual resolution changes it.
    return event.actor != ACTOR and event.type == "resolved" and event.resolution == "manual"


def _changed_by(stored: dict[str, Any] | None, kind: str, offset: int) -> bool:
    """Whether the message at ``offset`` of the ``kind`` topic changed this flow already."""
    recorded = (stored or {}).get(OFFSETS_FIELD, {}).get(kind)
    return recorded is not None and offset <= recorded


def _again(stored: dict[str, Any] | None) -> Outcome:
    state = machine.state_from_json(stored)
    metrics.REDERIVED_OUTPUTS.inc()
    return Outcome(state=stored, messages=[to_message(e) for e in machine.effects_of(state)], flow=state.flow)


def _outcome(stored: dict[str, Any] | None, state: machine.FlowState, step: machine.Step | None,
             now: datetime, kind: str, message: Incoming) -> Outcome:
    if step is None or step.state == state:
        return Outcome(state=None, messages=[], flow=state.flow)
    _observe(step, now)
    offsets = {**(stored or {}).get(OFFSETS_FIELD, {}), kind: message.offset}
    document = {**machine.state_to_json(step.state), PARTITION_FIELD: message.partition,
                OFFSETS_FIELD: offsets}
    return Outcome(state=document, messages=[to_message(e) for e in step.effects], flow=step.state.flow)


def _observe(step: machine.Step, now: datetime) -> None:
    for effect in step.effects:
        flow = effect.flow
        if isinstance(effect, machine.IncidentOpened):
            metrics.INCIDENTS_OPENED.labels(flow.incident_reason, flow.mode).inc()
            if flow.incident_reason == "timeout":
                metrics.DETECTION_LAG.observe(max(0.0, (now - flow.deadline).total_seconds()))
        elif isinstance(effect, machine.Transition) and flow.status is machine.Status.RESOLVED:
            metrics.INCIDENTS_RESOLVED.labels(flow.resolution, flow.mode).inc()
