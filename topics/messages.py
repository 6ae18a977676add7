"""Value schemas of every topic: one declaration (a msgspec Struct) per schema.

Each declaration's ``tag`` is its ``schema`` field and its field types carry the shared field
rules (``topics.fields``), so decoding validates; ``topics.codec`` does the bytes. Optional fields
are left out rather than sent as null.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from topics.declared import Declared, Message, convert
from topics.fields import (
    Detail,
    IdempotencyKey,
    Mode,
    ProjectId,
    Reference,
    ReplayId,
    ResultStatus,
    TimeoutSeconds,
    Timestamp,
    TypeName,
    format_timestamp,
)


class IncidentEventType(StrEnum):
    """A change in an incident's life: the ``type`` of an ``IncidentEvent``."""

    OPENED = "opened"
    REPROCESS_REQUESTED = "reprocess_requested"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IncidentReason(StrEnum):
    """Why an incident opened: no result by the deadline, or a failed one."""

    TIMEOUT = "timeout"
    FAILED_OUTCOME = "failed_outcome"


class Resolution(StrEnum):
    """How an incident was resolved: a succeeded result came, or an operator resolved it."""

    OUTCOME_SUCCEEDED = "outcome_succeeded"
    MANUAL = "manual"


class DeadlineAction(StrEnum):
    """What a ``DeadlineBatch`` asks of its flows."""

    EXPIRE = "expire"
    FORGET = "forget"


class Snapshot(Declared, frozen=True, kw_only=True):
    """An AES-256-GCM ciphertext envelope; only the gateway and the callback sink can open it."""

    key_id: str = msgspec.field(name="kid")
    nonce: str
    ciphertext: str = msgspec.field(name="ct")

    def to_dict(self) -> dict[str, str]:
        return {"kid": self.key_id, "nonce": self.nonce, "ct": self.ciphertext}


class Receipt(Message, frozen=True, kw_only=True, tag="receipt.v1"):
    """The app accepted a payment event and owes its effect (acceptance signal)."""

    project_id: ProjectId
    idempotency_key: IdempotencyKey
    reference: Reference
    event_type: TypeName
    effect_type: TypeName
    received_at: Timestamp
    timeout_seconds: TimeoutSeconds | None = None
    snapshot: Snapshot | None = None
    # Set by the gateway from the project; direct producers may leave it out and the agents
    # take it from the project.
    mode: Mode | None = None


class Result(Message, frozen=True, kw_only=True, tag="result.v1"):
    """The app applied the effect, or failed to (outcome signal)."""

    project_id: ProjectId
    idempotency_key: IdempotencyKey
    reference: Reference
    status: ResultStatus
    received_at: Timestamp
    replay_id: ReplayId | None = None
    detail: Detail | None = None
    mode: Mode | None = None


class IncidentEvent(Message, frozen=True, kw_only=True, tag="incident.v1"):
    """A change in an incident's life: opened, reprocess_requested, acknowledged, resolved."""

    event_id: str
    type: IncidentEventType
    incident_id: str
    project_id: ProjectId
    reference: Reference
    mode: Mode
    actor: str
    occurred_at: Timestamp
    reason: IncidentReason | None = None
    resolution: Resolution | None = None
    deadline: Timestamp | None = None
    replay_id: ReplayId | None = None
    note: Detail | None = None
    # An "opened" event of a failed outcome: the failed result's detail. Optional, so events
    # written before it existed still decode.
    detail: Detail | None = None


class RepairRequest(Message, frozen=True, kw_only=True, tag="repair.v1"):
    """An operator asked for the effect to be rerun through the project's repair callback."""

    replay_id: ReplayId
    incident_id: str
    project_id: ProjectId
    reference: Reference
    mode: Mode
    event_type: TypeName
    effect_type: TypeName
    requested_by: str
    requested_at: Timestamp


class AuditEvent(Message, frozen=True, kw_only=True, tag="audit.v1"):
    """Something happened that the project's audit log must show: an operator action or a flow
    transition. ``event_id`` is deterministic for a given cause so a replayed stream appends nothing
    twice."""

    event_id: str
    # None for events of no single project (an admin operator created); they chain as "system".
    project_id: ProjectId | None = None
    actor: str
    action: TypeName
    target: str
    occurred_at: Timestamp
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    source_address: str | None = None


class DeadLetter(Message, frozen=True, kw_only=True, tag="deadletter.v1"):
    """A message a consumer could not process: the original bytes (base64), where they came from
    and why they were refused."""

    topic: str
    partition: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    offset: Annotated[int, Meta(ge=0, le=2**63 - 1)]
    value_b64: str
    reason: str
    consumer: str
    failed_at: Timestamp
    key_b64: str | None = None

    @classmethod
    def of(cls, *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
           reason: str, consumer: str, failed_at: Timestamp) -> DeadLetter:
        """A record of one refused message, keeping its exact bytes for inspection and replay."""
        return cls(
            topic=topic, partition=partition, offset=offset, reason=reason, consumer=consumer,
            failed_at=failed_at, value_b64=base64.b64encode(value or b"").decode(),
            key_b64=None if key is None else base64.b64encode(key).decode(),
        )


class FlowStatus(StrEnum):
    """Where a flow is (``agents.flow``'s state machine): the ``status`` of a ``FlowRecord``."""

    PENDING = "pending"
    APPLIED = "applied"
    INCIDENT = "incident"
    RESOLVED = "resolved"


class FlowRecord(Declared, frozen=True, kw_only=True, forbid_unknown_fields=False, omit_defaults=False):
    """A flow (one cycle of a reference in one mode) as the agents' transition and repeated-receipt
    audit events carry it in ``AuditEvent.data`` (``agents.outputs.flow_data``) and the read model
    stores it. The events carry more beside it (a transition's previous_status and cause, a
    repeat's receipts and last_receipt_at), so other fields are let through; unset ones are
    written as null, as they always were."""

    reference: Reference
    mode: Mode
    status: FlowStatus
    event_type: TypeName
    effect_type: TypeName
    received_at: Timestamp
    deadline: Timestamp
    applied_at: Timestamp | None = None
    incident_id: str | None = None
    detail: Detail | None = None
    version: Annotated[int, Meta(ge=1)]
    # Events written before flow cycles have none: they are of cycle 1.
    cycle: Annotated[int, Meta(ge=1)] = 1

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FlowRecord:
        """The flow an audit event's data carries; ``FieldErrors`` naming what is wrong otherwise."""
        return convert(cls, data)

    def data(self) -> dict[str, Any]:
        """The record as an audit event's data: JSON values, timestamps as we write them. (Each
        transition writes one: its times are named rather than looked for.)"""
        data = msgspec.structs.asdict(self)
        data["received_at"] = format_timestamp(self.received_at)
        data["deadline"] = format_timestamp(self.deadline)
        if self.applied_at is not None:
            data["applied_at"] = format_timestamp(self.applied_at)
        return data


# Keeps a message far below Kafka's 1 MiB default even with 512-character references.
_MAX_BATCH_KEYS = 500
FlowKeyText = Annotated[str, Meta(pattern=":", description="a flow key '<project_id>:<reference>'")]


class DeadlineBatch(Message, frozen=True, kw_only=True, tag="deadline_batch.v1"):
    """Internal to the agents: "these flows' deadlines have passed" (``expire``) or "these flows
    have been closed longer than the retention" (``forget``), sent by the agents' timers on the
    partition that owns the flows, so that their state changes happen inside stream processing.

    One message per partition and timer round rather than one per flow: a tick per flow cost a
    produce and a stream event each, and under load the ticks queued behind other traffic.

    The keys are text on the wire (flow keys are UTF-8); ``of`` and ``flow_keys`` speak bytes,
    as the agents' tables do."""

    MAX_KEYS: ClassVar[int] = _MAX_BATCH_KEYS

    keys: Annotated[tuple[FlowKeyText, ...], Meta(
        min_length=1, max_length=_MAX_BATCH_KEYS,
        description=f"a list of 1 to {_MAX_BATCH_KEYS} flow keys '<project_id>:<reference>'")]
    # Batches written before forgetting existed have no action: they are all ``expire``.
    action: DeadlineAction = DeadlineAction.EXPIRE

    @classmethod
    def of(cls, keys: Iterable[bytes], action: DeadlineAction = DeadlineAction.EXPIRE) -> DeadlineBatch:
        return cls(keys=tuple(key.decode() for key in keys), action=action)

    @property
    def flow_keys(self) -> tuple[bytes, ...]:
        return tuple(key.encode() for key in self.keys)
