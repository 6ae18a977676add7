"""The flow tracker: the thin adapter between Kafka messages and the state machine in ``agents.flow``.

It decodes and validates each message (receipts, results, operator incident events, batches of
due deadlines), runs one step of the state machine per flow on its stored state and returns what
to store and what to publish. Anything it cannot use becomes a dead letter with a reason instead of an
exception, so one bad message never stalls a partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aiokafka.partitioner import murmur2

from agents import flow as machine
from agents import metrics, stored
from agents.outputs import ACTOR, forgotten_event, to_message
from agents.projects import ProjectDirectory
from agents.stored import Document
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
from topics.fields import Mode
from topics.messages import DeadlineAction, FlowStatus, IncidentEventType, IncidentReason, Resolution


@dataclass(frozen=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Outcome:
    """What one message led to for one flow key: the document to store (None: leave it), the
    messages to publish, and, when ``indexed``, the key's earliest pending deadline now (None:
    nothing pending) for the deadline index. ``forget``: delete the key (a tombstone). Or, instead,
    a dead letter, or the partition the message belongs on (it came on another: forward it there)."""

    state: Document | None
    messages: list[AuditEvent | IncidentEvent]
    deadline: datetime | None = None
    indexed: bool = False
    forget: bool = False
    # The messages must be in Kafka before the state is written: the new state no longer holds
    # what a replay after a crash would derive them from again (a forgotten flow's announcement).
    messages_first: bool = False
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


Load = Callable[[bytes], Document | None]


class FlowTracker:
    CONSUMER = "agents.flow_tracker"

    def __init__(self, *, topics: TrackerTopics, projects: ProjectDirectory, partitions: int,
                 retention: timedelta, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._topics = topics
        self._kinds = topics.kinds()
        self._projects = projects
        self._partitions = partitions
        self._retention = retention
        self._clock = clock

    async def handle(self, message: Incoming, load: Load) -> list[tuple[bytes | None, Outcome]]:
        """Each flow ``message`` concerns, by key, with its outcome: the one flow of a receipt, result
        or incident event, or every flow a batch of due deadlines names. ``load`` reads a flow's
        stored document, only when the message can change it.

        A message that changed a flow before (its offset is not past the one the flow recorded) is
        a replay after a crash: the state was stored, but its outputs may never have reached Kafka.
        The flow's outputs are derived again from the stored state and published once more (their
        ids are deterministic, so every consumer drops what it has already), and the document is
        stored again so that the changelog surely holds it."""
        if message.topic == self._topics.deadlines:
            return self._batch(message, load)
        return [(message.key, await self._one_flow(message, load))]

    async def _one_flow(self, message: Incoming, load: Load) -> Outcome:
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
            doc = load(message.key) if message.key else None
            if stored.changed_by(doc, kind, message.offset):
                return _again(doc)
            states = stored.states_of(doc)
            if isinstance(signal, IncidentEvent):
                mode = signal.mode
                state = machine.state_from_json(states.get(mode))
                step: machine.Step | None = machine.on_operator_resolve(state, signal.incident_id, now=now)
            else:
                mode, state, step = await self._signal(signal, states, now)
        except SchemaError as exc:
            return self._dead(message, f"{exc.reason}: {exc.detail}", now)
        if step is None or step.state == state:
            return _unchanged(doc)
        _observe(step, now)
        states[mode] = machine.state_to_json(step.state)
        return _changed(doc, states, [to_message(e) for e in step.effects], kind, message)

    def _batch(self, message: Incoming, load: Load) -> list[tuple[bytes | None, Outcome]]:
        """Each flow key a batch of the deadline timer names: its pending flows past their deadline
        open their timeout incidents (``expire``), or its flows closed longer than the retention are
        forgotten (``forget``). A batch that does not decode is one dead letter, keyed by the
        message's own key."""
        now = self._clock()
        try:
            batch = decode(DeadlineBatch, message.value)
        except SchemaError as exc:
            return [(message.key, self._dead(message, f"{exc.reason}: {exc.detail}", now))]
        outcomes: list[tuple[bytes | None, Outcome]] = []
        for key in batch.flow_keys:
            doc = load(key)
            if stored.changed_by(doc, "deadlines", message.offset):
                outcomes.append((key, _again(doc)))
            elif batch.action == DeadlineAction.FORGET:
                outcomes.append((key, self._forget(doc, message, now)))
            else:
                outcomes.append((key, _expire(doc, message, now)))
        return outcomes

    def _forget(self, doc: Document | None, message: Incoming, now: datetime) -> Outcome:
        states = stored.states_of(doc)
        kept: dict[str, dict[str, object]] = {}
        events: list[AuditEvent | IncidentEvent] = []
        for mode, raw in states.items():
            if not machine.forgettable(raw, retention=self._retention, now=now):
                kept[mode] = raw
                continue
            flow = machine.state_from_json(raw).flow
            if flow is not None:
                metrics.FLOWS_FORGOTTEN.labels(mode).inc()
                events.append(forgotten_event(flow, now))
        if len(kept) == len(states):
            return _unchanged(doc)
        if not kept:
            return Outcome(state=None, messages=events, deadline=None, indexed=True, forget=True,
                           messages_first=True)
        return replace(_changed(doc, kept, events, "deadlines", message), messages_first=True)

    async def _signal(self, signal: Receipt | Result, states: dict[str, dict[str, object]],
                      now: datetime) -> tuple[Mode, machine.FlowState, machine.Step | None]:
        """The signal's mode, that mode's state, and the step the signal makes of it (None: a
        duplicate)."""
        kind = "receipt" if isinstance(signal, Receipt) else "result"
        project = await self._projects.get(signal.project_id)
        if project is None:
            raise SchemaError("unknown_project", f"{signal.project_id} does not exist")
        # The gateway stamps each signal with its project's mode; a direct producer may leave it
        # out, and the project's mode now stands for it.
        mode = signal.mode or project.mode
        state = machine.state_from_json(states.get(mode))
        remembered = machine.remember(state, signal.idempotency_key, now)
        if remembered is None:
            metrics.DUPLICATES.labels(kind).inc()
            return mode, state, None
        metrics.JOIN_LATENCY.labels(kind).observe(max(0.0, (now - signal.received_at).total_seconds()))
        if isinstance(signal, Receipt):
            return mode, state, machine.on_receipt(remembered, signal, mode=mode,
                                                   project_timeout_minutes=project.timeout_minutes, now=now)
        return mode, state, machine.on_result(remembered, signal, now=now)

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
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


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
    return (event.actor != ACTOR and event.type == IncidentEventType.RESOLVED
            and event.resolution == Resolution.MANUAL)


def _expire(doc: Document | None, message: Incoming, now: datetime) -> Outcome:
    """Each of the key's pending flows past its deadline opens its timeout incident."""
    states = stored.states_of(doc)
    effects: list[machine.Effect] = []
    for mode, raw in states.items():
        state = machine.state_from_json(raw)
        step = machine.on_deadline(state, now=now)
        if step.state != state:
            _observe(step, now)
            states[mode] = machine.state_to_json(step.state)
            effects += step.effects
    if not effects:
        return _unchanged(doc)
    return _changed(doc, states, [to_message(e) for e in effects], "deadlines", message)


def _again(doc: Document | None) -> Outcome:
    """The outputs of every kept cycle of the key, derived again from the stored document."""
    metrics.REDERIVED_OUTPUTS.inc()
    messages = [to_message(effect) for raw in stored.states_of(doc).values()
                for effect in machine.effects_of(machine.state_from_json(raw))]
    return Outcome(state=doc, messages=messages, deadline=stored.pending_deadline(doc), indexed=True)


def _unchanged(doc: Document | None) -> Outcome:
    return Outcome(state=None, messages=[], deadline=stored.pending_deadline(doc), indexed=doc is not None)


def _changed(doc: Document | None, states: dict[str, dict[str, object]],
             messages: list[AuditEvent | IncidentEvent], kind: str, message: Incoming) -> Outcome:
    new = stored.document(states, partition=message.partition,
                          offsets={**stored.offsets_of(doc), kind: message.offset})
    return Outcome(state=new, messages=messages, deadline=stored.pending_deadline(new), indexed=True)


def _observe(step: machine.Step, now: datetime) -> None:
    for effect in step.effects:
        flow = effect.flow
        if isinstance(effect, machine.IncidentOpened):
            metrics.INCIDENTS_OPENED.labels(flow.incident_reason, flow.mode).inc()
            if flow.incident_reason == IncidentReason.TIMEOUT:
                metrics.DETECTION_LAG.observe(max(0.0, (now - flow.deadline).total_seconds()))
        elif isinstance(effect, machine.Transition) and flow.status == FlowStatus.RESOLVED:
            metrics.INCIDENTS_RESOLVED.labels(flow.resolution, flow.mode).inc()
        elif isinstance(effect, machine.ReceiptRepeated):
            metrics.RECEIPTS_REPEATED.labels(flow.mode).inc()
        elif isinstance(effect, machine.Transition) and effect.flow.cycle > 1 and effect.previous is None:
            metrics.CYCLES_STARTED.labels(flow.mode).inc()
