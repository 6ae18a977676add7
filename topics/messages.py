"""Value schemas of every topic (DESIGN.md §3): one frozen dataclass per schema.

Each class knows its ``schema`` tag, checks a decoded document with the shared field rules and
turns itself back into the JSON document. ``topics.codec`` does the bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Self

from topics.fields import (
    MAX_DETAIL_BYTES,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    MODES,
    RESULT_STATUSES,
    Checker,
    format_timestamp,
)

INCIDENT_EVENT_TYPES = ("opened", "reprocess_requested", "acknowledged", "resolved")
INCIDENT_REASONS = ("timeout", "failed_outcome")
RESOLUTIONS = ("outcome_succeeded", "manual")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Snapshot):
        return value.to_dict()
    return value


def _compact(doc: dict[str, Any]) -> dict[str, Any]:
    """Optional fields are left out rather than sent as null."""
    return {k: _json_value(v) for k, v in doc.items() if v is not None}


class Message:
    SCHEMA: ClassVar[str]
    FIELDS: ClassVar[frozenset[str]]

    @classmethod
    def checker(cls, doc: Any) -> Checker:
        check = Checker(doc, allowed=cls.FIELDS | {"schema"})
        if check.doc.get("schema") != cls.SCHEMA:
            check.fail("schema", f"must be {cls.SCHEMA!r}")
        return check

    @classmethod
    def from_dict(cls, doc: Any) -> Self:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in sorted(self.FIELDS)}
        return _compact({"schema": self.SCHEMA, **values})


def _fields(*names: str) -> frozenset[str]:
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An AES-256-GCM ciphertext envelope; only the gateway and the callback sink can open it."""

    key_id: str
    nonce: str
    ciphertext: str

    @classmethod
    def from_dict(cls, doc: Any, check: Checker, name: str) -> Snapshot | None:
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("kid", "nonce", "ct")):
            check.fail(name, "must be an envelope {kid, nonce, ct} of strings")
            return None
        return cls(key_id=doc["kid"], nonce=doc["nonce"], ciphertext=doc["ct"])

    def to_dict(self) -> dict[str, str]:
        return {"kid": self.key_id, "nonce": self.nonce, "ct": self.ciphertext}


@dataclass(frozen=True, slots=True)
class Receipt(Message):
    """The app accepted a payment event and owes its effect (acceptance signal)."""

    SCHEMA: ClassVar[str] = "receipt.v1"
    FIELDS: ClassVar[frozenset[str]] = _fields(
        "project_id", "idempotency_key", "reference", "event_type", "effect_type",
        "timeout_seconds", "received_at", "snapshot", "mode",
    )

    project_id: str
    idempotency_key: str
    reference: str
    event_type: str
    effect_type: str
    received_at: datetime
    timeout_seconds: int | None = None
    snapshot: Snapshot | None = None
    # Set by the gateway from the project; direct producers may leave it out and the agents
    # take it from the project.
    mode: str | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> Receipt:
        check = cls.checker(doc)
        values = dict(
            project_id=check.project_id(),
            idempotency_key=check.idempotency_key(),
            reference=check.reference(),
            event_type=check.type_name("event_type"),
            effect_type=check.type_name("effect_type"),
            received_at=check.timestamp("received_at"),
            timeout_seconds=check.integer("timeout_seconds", MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS),
            mode=check.choice("mode", MODES, required=False),
        )
        raw_snapshot = check.obj("snapshot")
        snapshot = None if raw_snapshot is None else Snapshot.from_dict(raw_snapshot, check, "snapshot")
        check.done()
        return cls(snapshot=snapshot, **values)  # type: ignore[arg-type]



@dataclass(frozen=True, slots=True)
class Result(Message):
    """The app applied the effect, or failed to (outcome signal)."""

    SCHEMA: ClassVar[str] = "result.v1"
    FIELDS: ClassVar[frozenset[str]] = _fields(
        "project_id", "idempotency_key", "reference", "status", "replay_id", "detail", "received_at", "mode",
    )

    project_id: str
    idempotency_key: str
    reference: str
    status: str
    received_at: datetime
    replay_id: str | None = None
    detail: str | None = None
    mode: str | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> Result:
        check = cls.checker(doc)
        values = dict(
            project_id=check.project_id(),
            idempotency_key=check.idempotency_key(),
            reference=check.reference(),
            status=check.choice("status", RESULT_STATUSES),
            received_at=check.timestamp("received_at"),
            replay_id=check.replay_id(),
            detail=check.text("detail", MAX_DETAIL_BYTES),
            mode=check.choice("mode", MODES, required=False),
        )
        check.done()
        return cls(**values)  # type: ignore[arg-type]



@dataclass(frozen=True, slots=True)
class IncidentEvent(Message):
    """A change in an incident's life: opened, reprocess_requested, acknowledged, resolved."""

    SCHEMA: ClassVar[str] = "incident.v1"
    FIELDS: ClassVar[frozenset[str]] = _fields(
        "event_id", "type", "incident_id", "project_id", "reference", "mode", "reason", "resolution",
        "deadline", "replay_id", "actor", "note", "occurred_at", "detail",
    )

    event_id: str
    type: str
    incident_id: str
    project_id: str
    reference: str
    mode: str
    actor: str
    occurred_at: datetime
    reason: str | None = None
    resolution: str | None = None
    deadline: datetime | None = None
    replay_id: str | None = None
    note: str | None = None
    # An "opened" event of a failed outcome: the failed result's detail. Optional, so events
    # written before it existed still decode.
    detail: str | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> IncidentEvent:
        check = cls.checker(doc)
        values = dict(
            event_id=check.string("event_id"),
            type=check.choice("type", INCIDENT_EVENT_TYPES),
            incident_id=check.string("incident_id"),
            project_id=check.project_id(),
            reference=check.reference(),
            mode=check.choice("mode", MODES),
            actor=check.string("actor"),
            occurred_at=check.timestamp("occurred_at"),
            reason=check.choice("reason", INCIDENT_REASONS, required=False),
            resolution=check.choice("resolution", RESOLUTIONS, required=False),
            deadline=check.timestamp("deadline", required=False),
            replay_id=check.replay_id(),
            note=check.text("note", MAX_DETAIL_BYTES),
            detail=check.text("detail", MAX_DETAIL_BYTES),
        )
        check.done()
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RepairRequest(Message):
    """An operator asked for the effect to be rerun through the project's repair callback."""

    SCHEMA: ClassVar[str] = "repair.v1"
    FIELDS: ClassVar[frozenset[str]] = _fields(
        "replay_id", "incident_id", "project_id", "reference", "mode", "event_type", "effect_type",
        "requested_by", "requested_at",
    )

    replay_id: str
    incident_id: str
    project_id: str
    reference: str
    mode: str
    event_type: str
    effect_type: str
    requested_by: str
    requested_at: datetime

    @classmethod
    def from_dict(cls, doc: Any) -> RepairRequest:
        check = cls.checker(doc)
        values = dict(
            replay_id=check.replay_id(),
            incident_id=check.string("incident_id"),
            project_id=check.project_id(),
            reference=check.reference(),
            mode=check.choice("mode", MODES),
            event_type=check.type_name("event_type"),
            effect_type=check.type_name("effect_type"),
            requested_by=check.string("requested_by"),
            requested_at=check.timestamp("requested_at"),
        )
        if values["replay_id"] is None:
            check.fail("replay_id", "is required")
        check.done()
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AuditEvent(Message):
    """Something happened that the project's audit log must show: an operator action or a flow
    transition. ``event_id`` is deterministic for a given cause so a replayed stream appends nothing
    twice."""

    SCHEMA: ClassVar[str] = "audit.v1"
    FIELDS: ClassVar[frozenset[str]] = _fields(
        "event_id", "project_id", "actor", "action", "target", "data", "source_address", "occurred_at",
    )

    event_id: str
    # None for events of no single project (an admin operator created); they chain as "system".
    project_id: str | None
    actor: str
    action: str
    target: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    source_address: str | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> AuditEvent:
        check = cls.checker(doc)
        values = dict(
            event_id=check.string("event_id"),
            project_id=check.project_id(required=False),
            actor=check.string("actor"),
            action=check.type_name("action"),
            target=check.string("target"),
            occurred_at=check.timestamp("occurred_at"),
            data=check.obj("data") or {},
            source_address=check.string("source_address", required=False),
        )
        check.done()
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeadLetter(Message):
    """A message a consumer could not process: the original bytes (base64), where they came from
    and why they were refused."""

    SCHEMA: ClassVar[str] = "deadletter.v1"
    FIELDS: ClassVar[frozenset[str]] = _fields(
        "topic", "partition", "offset", "key_b64", "value_b64", "reason", "consumer", "failed_at",
    )

    topic: str
    partition: int
    offset: int
    value_b64: str
    reason: str
    consumer: str
    failed_at: datetime
    key_b64: str | None = None

    @classmethod
    def of(cls, *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
           reason: str, consumer: str, failed_at: datetime) -> DeadLetter:
        """A record of one refused message, keeping its exact bytes for inspection and replay."""
        return cls(
            topic=topic, partition=partition, offset=offset, reason=reason, consumer=consumer,
            failed_at=failed_at, value_b64=base64.b64encode(value or b"").decode(),
            key_b64=None if key is None else base64.b64encode(key).decode(),
        )

    @classmethod
    def from_dict(cls, doc: Any) -> DeadLetter:
        check = cls.checker(doc)
        values = dict(
            topic=check.string("topic"),
            partition=check.integer("partition", 0, 2**31 - 1, required=True),
            offset=check.integer("offset", 0, 2**63 - 1, required=True),
            value_b64=check.string("value_b64"),
            reason=check.string("reason"),
            consumer=check.string("consumer"),
            failed_at=check.timestamp("failed_at"),
            key_b64=check.string("key_b64", required=False),
        )
        check.done()
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeadlineBatch(Message):
    """Internal to the agents: "these flows' deadlines have passed" (``expire``) or "these flows
    have been closed longer than the retention" (``forget``), sent by the agents' timers on the
    partition that owns the flows, so that their state changes happen inside stream processing.

    One message per partition and timer round rather than one per flow: a tick per flow cost a
    produce and a stream event each, and under load the ticks queued behind other traffic."""

    SCHEMA: ClassVar[str] = "deadline_batch.v1"
    FIELDS: ClassVar[frozenset[str]] = _fields("keys", "action")
    ACTIONS: ClassVar[tuple[str, ...]] = ("expire", "forget")
    # Keeps a message far below Kafka's 1 MiB default even with 512-character references.
    MAX_KEYS: ClassVar[int] = 500

    keys: tuple[bytes, ...]
    # Batches written before forgetting existed have no action: they are all ``expire``.
    action: str = "expire"

    @classmethod
    def from_dict(cls, doc: Any) -> DeadlineBatch:
        check = cls.checker(doc)
        keys = check.doc.get("keys")
        if not isinstance(keys, list) or not 1 <= len(keys) <= cls.MAX_KEYS:
            check.fail("keys", f"must be a list of 1 to {cls.MAX_KEYS} flow keys")
            keys = []
        elif not all(isinstance(key, str) and ":" in key for key in keys):
            check.fail("keys", "must hold flow keys '<project_id>:<reference>'")
        action = check.choice("action", cls.ACTIONS, required=False) or "expire"
        check.done()
        return cls(keys=tuple(key.encode() for key in keys), action=action)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schema": self.SCHEMA, "keys": [key.decode() for key in self.keys]}
        if self.action != "expire":
            doc["action"] = self.action
        return doc
