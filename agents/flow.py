"""The flow state machine, as plain data and pure functions.

No Kafka, no clock of its own: each function takes the state, one input and ``now`` and returns
the new state plus the effects to publish. The faust agent (``agents.tracker``) is a thin adapter
around it, so every rule here is tested without a broker.

A flow is one **cycle** of a (project, mode, reference): its state here is one mode's. A receipt
for a reference whose flow is closed (applied or resolved) starts the next cycle, with its own
deadline, incident and history; a receipt while the flow is open is counted on it and moves
nothing. Results join the open cycle (held until its receipt when there is none).

    pending ──result succeeded (before deadline)──► applied
    pending ──deadline passes──► incident(reason=timeout)
    pending ──result failed (received before the deadline)──► incident(reason=failed_outcome)
    pending ──any result received after the deadline──► incident(reason=timeout), then as below
    incident(timeout) ──result failed, received before the deadline──► incident(reason=failed_outcome)
    incident ──result succeeded (late, or for a replay)──► resolved
    incident ──operator resolves──► resolved (resolution=manual)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from common.ids import derived_id
from topics.fields import Mode, ResultStatus, format_timestamp, parse_timestamp
from topics.messages import FlowStatus, IncidentReason, Receipt, Resolution, Result

# A result that arrives before its receipt waits this long for it, then is forgotten.
HELD_RESULT_TTL = timedelta(days=7)
# Held results per flow: enough for retries of a real app, bounded so a misbehaving producer
# cannot grow one key's state without limit.
MAX_HELD_RESULTS = 16
# A repeated (project_id, idempotency_key) within 24 h is a duplicate. Keys are
# remembered per flow (the only state a partition owns); the newest ones, bounded.
DEDUPE_WINDOW = timedelta(hours=24)
MAX_REMEMBERED_KEYS = 64
# Closed cycles kept beside the current one, so that a crash replaying the message that closed a
# cycle, after the next one started, still derives the closed cycle's outputs again.
MAX_PAST_CYCLES = 3


@dataclass(frozen=True, slots=True)
class Flow:
    project_id: str
    reference: str
    mode: Mode
    status: FlowStatus
    event_type: str
    effect_type: str
    received_at: datetime
    deadline: datetime
    version: int
    applied_at: datetime | None = None
    incident_id: str | None = None
    incident_reason: IncidentReason | None = None
    resolved_at: datetime | None = None
    resolution: Resolution | None = None
    # The failed result's own words (bounded by the result schema), kept for operators once a
    # failed result made the incident a failed outcome.
    detail: str | None = None
    # Which cycle of the reference this is (1 for the first, or the first since it was forgotten).
    cycle: int = 1

    @property
    def closed(self) -> bool:
        return self.status in (FlowStatus.APPLIED, FlowStatus.RESOLVED)


@dataclass(frozen=True, slots=True)
class HeldResult:
    status: ResultStatus
    received_at: datetime
    replay_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One transition of the flow as it is kept in the state: enough to derive its outputs again
    (``effects_of``) when a crash lost them after the state was stored."""

    version: int
    status: FlowStatus
    previous: FlowStatus | None
    cause: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Repeats:
    """The receipts recorded on a cycle after its first: how many, and the newest one's time."""

    count: int
    last_received_at: datetime


@dataclass(frozen=True, slots=True)
class PastCycle:
    """A closed cycle, as it stood when the next one started."""

    flow: Flow
    changes: tuple[Change, ...]
    repeats: Repeats | None = None


@dataclass(frozen=True, slots=True)
class FlowState:
    """Everything the agent keeps for one ``(project_id, mode, reference)``."""

    flow: Flow | None = None
    held: tuple[HeldResult, ...] = ()
    # (idempotency_key, first seen) of the signals already applied, for duplicate detection.
    seen: tuple[tuple[str, datetime], ...] = ()
    # Every transition of the current cycle, versions 1..n in order (a cycle has at most four).
    changes: tuple[Change, ...] = ()
    # Receipts recorded on the current cycle after its first; kept apart from the flow so that
    # its transitions stay what they were when they happened.
    repeats: Repeats | None = None
    # The newest closed cycles before the current one, oldest first.
    past: tuple[PastCycle, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    """The flow moved from one status to another (or came to be: ``previous`` is None)."""

    flow: Flow
    previous: FlowStatus | None
    cause: str
    at: datetime


@dataclass(frozen=True, slots=True)
class IncidentOpened:
    flow: Flow
    at: datetime
    # The incident was open already and its reason is corrected (a timeout that a failed result,
    # received before the deadline but applied after it, shows to be a failed outcome).
    corrected: bool = False


@dataclass(frozen=True, slots=True)
class IncidentResolved:
    flow: Flow
    at: datetime


@dataclass(frozen=True, slots=True)
class ReceiptRepeated:
    """Another receipt was recorded on the open cycle: its count and newest time grew."""

    flow: Flow
    repeats: Repeats
    at: datetime


Effect = Transition | IncidentOpened | IncidentResolved | ReceiptRepeated

# The cause of an operator's manual resolution: the gateway has published its incident event
# already, so the transition emits none of its own.
OPERATOR_RESOLVED = "operator_resolved"


@dataclass(frozen=True, slots=True)
class Step:
    state: FlowState
    effects: list[Effect] = field(default_factory=list)


def cycle_parts(flow: Flow) -> tuple[str, ...]:
    """What names a cycle in every id derived from it. The receipt's time is part of it because
    cycle numbers start again at 1 once a reference was forgotten."""
    return (flow.project_id, flow.mode, flow.reference, str(flow.cycle), format_timestamp(flow.received_at))


def incident_id_for(flow: Flow) -> str:
    # One incident per cycle (resolved is final), so the cycle names it: a replayed stream after
    # a crash derives the same id and cannot open a second incident.
    return derived_id("inc", *cycle_parts(flow))


def deadline_for(receipt: Receipt, project_timeout_minutes: int) -> datetime:
    if receipt.timeout_seconds is not None:
        return receipt.received_at + timedelta(seconds=receipt.timeout_seconds)
    return receipt.received_at + timedelta(minutes=project_timeout_minutes)


def remember(state: FlowState, idempotency_key: str, now: datetime) -> FlowState | None:
    """``state`` with this signal's key remembered, or None when the key was seen within 24 h
    (the signal is a duplicate and must change nothing)."""
    recent = tuple((k, at) for k, at in state.seen if now - at < DEDUPE_WINDOW)
    if any(k == idempotency_key for k, _ in recent):
        return None
    return replace(state, seen=(*recent, (idempotency_key, now))[-MAX_REMEMBERED_KEYS:])


def on_receipt(state: FlowState, receipt: Receipt, *, mode: Mode, project_timeout_minutes: int,
               now: datetime) -> Step:
    """Start the first cycle, or the next one after a closed cycle; on an open cycle, count the
    receipt and move nothing (its deadline stays)."""
    current = state.flow
    if current is not None and not current.closed:
        before = state.repeats or Repeats(1, current.received_at)
        repeats = Repeats(before.count + 1, max(before.last_received_at, receipt.received_at))
        return Step(replace(state, repeats=repeats), [ReceiptRepeated(current, repeats, now)])
    flow = Flow(
        project_id=receipt.project_id, reference=receipt.reference, mode=mode, status=FlowStatus.PENDING,
        event_type=receipt.event_type, effect_type=receipt.effect_type, received_at=receipt.received_at,
        deadline=deadline_for(receipt, project_timeout_minutes), version=1,
        cycle=1 if current is None else current.cycle + 1,
    )
    joining = state.held
    past = state.past
    if current is not None:
        past = (*past, PastCycle(current, state.changes, state.repeats))[-MAX_PAST_CYCLES:]
        # Results held while the cycle before was closed may be that cycle's late repeats; only
        # those the gateway received after this receipt can be this cycle's.
        joining = tuple(h for h in joining if h.received_at >= receipt.received_at)
    step = _transition(replace(state, held=(), changes=(), repeats=None, past=past), flow, "receipt", now)
    for held in sorted(joining, key=lambda h: h.received_at):
        step = _merge(step, _apply_result(step.state, held, now))
    return step


def on_result(state: FlowState, result: Result, *, now: datetime) -> Step:
    held = HeldResult(status=result.status, received_at=result.received_at, replay_id=result.replay_id,
                      detail=result.detail)
    if state.flow is None or state.flow.closed:
        # Results before their receipt are joined when it comes; they never open an incident.
        # After a closed cycle, the next cycle's receipt decides whether they are its own.
        kept = tuple(h for h in state.held if now - h.received_at < HELD_RESULT_TTL)
        return Step(replace(state, held=(*kept, held)[-MAX_HELD_RESULTS:]))
    return _apply_result(state, held, now)


def on_deadline(state: FlowState, *, now: datetime) -> Step:
    """Open a timeout incident if the flow is still pending at or past its deadline."""
    flow = state.flow
    if flow is None or flow.status != FlowStatus.PENDING or now < flow.deadline:
        return Step(state)
    return _open_incident(state, IncidentReason.TIMEOUT, now)


def on_operator_resolve(state: FlowState, incident_id: str, *, now: datetime) -> Step:
    """An operator resolved the incident by hand (the gateway published the incident event)."""
    flow = state.flow
    if flow is None or flow.status != FlowStatus.INCIDENT or flow.incident_id != incident_id:
        return Step(state)
    resolved = _advance(flow, status=FlowStatus.RESOLVED, resolved_at=now, resolution=Resolution.MANUAL)
    return _transition(state, resolved, OPERATOR_RESOLVED, now)


def _apply_result(state: FlowState, result: HeldResult, now: datetime) -> Step:
    flow = state.flow
    assert flow is not None  # noqa: S101 (a result is applied only to a flow that exists)
    if flow.status == FlowStatus.PENDING:
        if result.received_at > flow.deadline:
            # Received after the deadline, applied before the timer fired (the agents were behind):
            # the incident was due, so it opens as a timeout, as if the timer had been on time, and
            # the result then acts on it (a success resolves it; a late failure changes nothing).
            opened = _open_incident(state, IncidentReason.TIMEOUT, now)
            return _merge(opened, _apply_result(opened.state, result, now))
        if result.status == ResultStatus.FAILED:
            return _open_incident(state, IncidentReason.FAILED_OUTCOME, now, detail=result.detail)
        applied = _advance(flow, status=FlowStatus.APPLIED, applied_at=result.received_at)
        return _transition(state, applied, "result_succeeded", now)
    if (flow.status == FlowStatus.INCIDENT and flow.incident_reason == IncidentReason.TIMEOUT
            and result.status == ResultStatus.FAILED and result.received_at <= flow.deadline):
        # The failure came in time and was applied late (the deadline fired first): the incident
        # is a failed outcome, and says so.
        corrected = _advance(flow, incident_reason=IncidentReason.FAILED_OUTCOME, detail=result.detail)
        return _transition(state, corrected, IncidentReason.FAILED_OUTCOME, now)
    if flow.status == FlowStatus.INCIDENT and result.status == ResultStatus.SUCCEEDED:
        resolved = _advance(flow, status=FlowStatus.RESOLVED, resolved_at=now,
                            resolution=Resolution.OUTCOME_SUCCEEDED)
        return _transition(state, resolved, "result_succeeded", now)
    return Step(state)


def _open_incident(state: FlowState, reason: IncidentReason, now: datetime, *,
                   detail: str | None = None) -> Step:
    flow = state.flow
    assert flow is not None  # noqa: S101 (an incident opens only on a flow that exists)
    opened = _advance(flow, status=FlowStatus.INCIDENT, incident_id=incident_id_for(flow),
                      incident_reason=reason, detail=detail)
    return _transition(state, opened, reason, now)


def _transition(state: FlowState, flow: Flow, cause: str, now: datetime) -> Step:
    """The flow moves to ``flow`` (its next version): the change is kept in the state, and the
    step's effects are exactly what ``effects_of`` derives from that change."""
    previous = None if state.flow is None else state.flow.status
    change = Change(flow.version, flow.status, previous, cause, now)
    return Step(replace(state, flow=flow, changes=(*state.changes, change)), _effects(flow, change))


def effects_of(state: FlowState) -> list[Effect]:
    """The outputs derived again from the stored state alone: every effect of every transition
    of the kept cycles, in order, as the steps that made them returned them, each cycle's
    repeated receipts as one ``ReceiptRepeated`` with their final count after its transitions."""
    cycles = [*state.past]
    if state.flow is not None:
        cycles.append(PastCycle(state.flow, state.changes, state.repeats))
    effects: list[Effect] = []
    for cycle in cycles:
        reason = None
        for change in cycle.changes:
            if change.status == FlowStatus.INCIDENT:
                reason = IncidentReason(change.cause)  # an incident's transitions are caused by its reason
            effects += _effects(_as_of(cycle.flow, change, reason), change)
        if cycle.repeats is not None and cycle.changes:
            effects.append(ReceiptRepeated(_as_of(cycle.flow, cycle.changes[-1], reason), cycle.repeats,
                                           cycle.changes[-1].at))
    return effects


def _effects(flow: Flow, change: Change) -> list[Effect]:
    effects: list[Effect] = [Transition(flow, change.previous, change.cause, change.at)]
    if change.status == FlowStatus.INCIDENT:
        effects.append(IncidentOpened(flow, change.at, corrected=change.previous == FlowStatus.INCIDENT))
    elif change.status == FlowStatus.RESOLVED and change.cause != OPERATOR_RESOLVED:
        effects.append(IncidentResolved(flow, change.at))
    return effects


def _as_of(final: Flow, change: Change, reason: IncidentReason | None) -> Flow:
    """The flow as it stood right after ``change``, whose incident's reason was then ``reason``.
    Statuses only move forward (pending, then applied or incident, then resolved) and each sets
    its own fields once, so an earlier version is the final flow without the fields of the
    statuses it had not reached yet (and with the reason it had). Only a failed result sets the
    detail, and it makes the reason failed_outcome at that very change, so the detail stands
    exactly from the change whose reason became failed_outcome."""
    status = change.status
    reached_incident = status in (FlowStatus.INCIDENT, FlowStatus.RESOLVED)
    resolved = status == FlowStatus.RESOLVED
    return replace(
        final, version=change.version, status=status,
        applied_at=final.applied_at if status == FlowStatus.APPLIED else None,
        incident_id=final.incident_id if reached_incident else None,
        incident_reason=reason if reached_incident else None,
        resolved_at=final.resolved_at if resolved else None,
        resolution=final.resolution if resolved else None,
        detail=final.detail if reached_incident and reason == IncidentReason.FAILED_OUTCOME else None,
    )


def _advance(flow: Flow, **changes: Any) -> Flow:
    return replace(flow, version=flow.version + 1, **changes)


def _merge(first: Step, second: Step) -> Step:
    return Step(second.state, first.effects + second.effects)


# --- (de)serialization of the state kept in the agent's changelog-backed table -------------------

def state_to_json(state: FlowState) -> dict[str, Any]:
    return {
        "flow": None if state.flow is None else _dump(_fields_of(state.flow)),
        "held": [_dump(_fields_of(h)) for h in state.held],
        "seen": [[key, format_timestamp(at)] for key, at in state.seen],
        "changes": _changes_to_json(state.changes),
        "repeats": _repeats_to_json(state.repeats),
        "past": [[_dump(_fields_of(p.flow)), _changes_to_json(p.changes), _repeats_to_json(p.repeats)]
                 for p in state.past],
    }


def state_from_json(doc: dict[str, Any] | None) -> FlowState:
    if not doc:
        return FlowState()
    flow = doc.get("flow")
    return FlowState(
        flow=None if flow is None else Flow(**_load(flow, Flow)),
        held=tuple(HeldResult(**_load(h, HeldResult)) for h in doc.get("held", ())),
        seen=tuple((key, _stored_time(at)) for key, at in doc.get("seen", ())),
        # States stored before changes were kept have none: their outputs cannot be derived again.
        changes=_changes_from_json(doc.get("changes", ())),
        repeats=_repeats_from_json(doc.get("repeats")),
        past=tuple(PastCycle(Flow(**_load(past_flow, Flow)), _changes_from_json(changes),
                             _repeats_from_json(repeats))
                   for past_flow, changes, repeats in doc.get("past", ())),
    )


def _changes_to_json(changes: tuple[Change, ...]) -> list[list[Any]]:
    return [[c.version, c.status.value, None if c.previous is None else c.previous.value, c.cause,
             format_timestamp(c.at)] for c in changes]


def _changes_from_json(rows: Any) -> tuple[Change, ...]:
    return tuple(Change(version, FlowStatus(status), None if previous is None else FlowStatus(previous),
                        cause, _stored_time(at))
                 for version, status, previous, cause, at in rows)


def _repeats_to_json(repeats: Repeats | None) -> list[Any] | None:
    return None if repeats is None else [repeats.count, format_timestamp(repeats.last_received_at)]


def _repeats_from_json(row: Any) -> Repeats | None:
    return None if row is None else Repeats(row[0], _stored_time(row[1]))


_TIME_FIELDS = {"received_at", "deadline", "applied_at", "resolved_at"}
# The fields stored as their values and read back as members.
_CHOICE_FIELDS: dict[type[Flow] | type[HeldResult], dict[str, type[StrEnum]]] = {
    Flow: {"mode": Mode, "status": FlowStatus, "incident_reason": IncidentReason, "resolution": Resolution},
    HeldResult: {"status": ResultStatus},
}


def _fields_of(obj: Flow | HeldResult) -> dict[str, Any]:
    # dataclasses.asdict deep-copies every value; these are flat and immutable, so a shallow read
    # is the same and much cheaper on the agents' hot path.
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def pending_deadline(doc: dict[str, Any] | None) -> datetime | None:
    """The deadline of a stored flow that is pending, else None: what the deadline index needs,
    read without loading the whole state (it reads every stored flow after a rebalance)."""
    flow = (doc or {}).get("flow")
    if flow is None or flow.get("status") != FlowStatus.PENDING.value:
        return None
    return _stored_time(flow["deadline"])


_CLOSED = (FlowStatus.APPLIED.value, FlowStatus.RESOLVED.value)


def forgettable(doc: dict[str, Any] | None, *, retention: timedelta, now: datetime) -> bool:
    """Whether a stored state may be forgotten: its cycle closed (its last transition) ``retention``
    ago or more, or it has no cycle and its held results waited for their receipt as long as they
    may. An open cycle (an open incident included) never is. Read from the stored JSON without
    loading the state: the retention sweep asks it of every stored flow."""
    flow = (doc or {}).get("flow")
    if flow is None:
        held = [_stored_time(h["received_at"]) for h in (doc or {}).get("held", ())]
        return not held or now - max(held) >= HELD_RESULT_TTL
    if flow["status"] not in _CLOSED:
        return False
    changes = (doc or {}).get("changes")
    # Stored before transitions were kept: the closing time the flow itself knows.
    legacy = flow.get("resolved_at") or flow.get("applied_at") or flow["received_at"]
    closed = changes[-1][4] if changes else legacy
    return now - _stored_time(closed) >= retention


def _stored_time(value: str) -> datetime:
    """A time ``state_to_json`` wrote with ``format_timestamp``."""
    at = parse_timestamp(value)
    if at is None:
        raise ValueError(f"a stored flow state holds {value!r} where state_to_json writes a time")
    return at


def _dump(values: dict[str, Any]) -> dict[str, Any]:
    return {k: format_timestamp(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _load(values: dict[str, Any], cls: type[Flow] | type[HeldResult]) -> dict[str, Any]:
    known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
    for name in _TIME_FIELDS & known.keys():
        if known[name] is not None:
            known[name] = parse_timestamp(known[name])
    for name, choices in _CHOICE_FIELDS[cls].items():
        if known.get(name) is not None:
            known[name] = choices(known[name])
    return known
