"""Every Kafka topic of SendPromptly, defined once: name, partitions, retention, key and value.

Nobody else spells a topic name: producers and consumers ask ``TopicSpec.name(prefix)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from topics.declared import Message
from topics.messages import (
    AuditEvent,
    DeadLetter,
    DeadlineBatch,
    IncidentEvent,
    Receipt,
    RepairRequest,
    Result,
)

DAY_MS = 24 * 3600 * 1000
# Snapshot ciphertext may live no longer than the 30-day purge period anywhere.
# Receipts carry it, and a dead letter may carry a receipt's bytes, so no topic keeps more.
SNAPSHOT_RETENTION_MS = 30 * DAY_MS


class Key(Enum):
    FLOW = "<project_id>:<reference>"
    PROJECT = "<project_id>"
    # Sent to an explicit partition: the one that owns every flow the message names.
    NONE = "(none)"


class Partitioning(Enum):
    # Receipts, results and incidents are co-partitioned: the same key lands on the same partition
    # number in each, so one agent task owns a flow's whole life.
    FLOW = "flow"
    SINGLE = "single"


@dataclass(frozen=True)
class TopicSpec:
    base_name: str
    key: Key
    value: type[Message]
    partitioning: Partitioning
    retention_ms: int = SNAPSHOT_RETENTION_MS

    def name(self, prefix: str = "") -> str:
        return prefix + self.base_name

    def partitions(self, flow_partitions: int) -> int:
        return flow_partitions if self.partitioning is Partitioning.FLOW else 1

    def config(self) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


RECEIPTS = TopicSpec("sendpromptly.receipts.v1", Key.FLOW, Receipt, Partitioning.FLOW)
RESULTS = TopicSpec("sendpromptly.results.v1", Key.FLOW, Result, Partitioning.FLOW)
INCIDENTS = TopicSpec("sendpromptly.incidents.v1", Key.FLOW, IncidentEvent, Partitioning.FLOW)
REPAIRS = TopicSpec("sendpromptly.repairs.v1", Key.FLOW, RepairRequest, Partitioning.FLOW)
# Keyed by project so one project's events stay in order: the audit sink chains them per project.
AUDIT = TopicSpec("sendpromptly.audit.v1", Key.PROJECT, AuditEvent, Partitioning.FLOW)
DEADLETTER = TopicSpec("sendpromptly.deadletter.v1", Key.FLOW, DeadLetter, Partitioning.SINGLE)
# Internal to the agents (not part of the public contract): the deadline timer's batches of due
# flows, each sent to the partition that owns them. A batch is only useful for moments, so it is
# kept a day. v1 carried one tick per flow; a worker that starts on v2 rebuilds its deadline index
# and fires every past-due flow again, so v1 ticks left behind in an upgrade are not needed.
DEADLINES = TopicSpec("sendpromptly.agents.deadlines.v2", Key.NONE, DeadlineBatch, Partitioning.FLOW,
                      retention_ms=DAY_MS)

ALL_TOPICS: tuple[TopicSpec, ...] = (RECEIPTS, RESULTS, INCIDENTS, REPAIRS, AUDIT, DEADLETTER, DEADLINES)


def flow_key(project_id: str, reference: str) -> bytes:
    return f"{project_id}:{reference}".encode()


def key_fields(key: bytes | None) -> dict[str, str]:
    """The project and the reference a flow key names (only the project for an audit key), for
    log lines; nothing for a key that names neither."""
    project_id, colon, reference = (key or b"").decode(errors="replace").partition(":")
    if not project_id.startswith("prj_"):
        return {}
    return {"project_id": project_id, **({"reference": reference} if colon else {})}


SYSTEM_AUDIT_KEY = b"system"


def project_key(project_id: str | None) -> bytes:
    """The audit topic's key: the project, or ``system`` for events of no single project."""
    return SYSTEM_AUDIT_KEY if project_id is None else project_id.encode()


def split_flow_key(key: bytes) -> tuple[str, str]:
    """Inverse of ``flow_key``; project ids never contain ``:``, references may."""
    project_id, sep, reference = key.decode().partition(":")
    if not sep:
        raise ValueError(f"flow key {key!r} is not '<project_id>:<reference>'")
    return project_id, reference
