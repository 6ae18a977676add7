"""Topic names, keys and value schemas: the one place they are defined."""

from topics.catalog import (
    ALL_TOPICS,
    AUDIT,
    DEADLETTER,
    DEADLINES,
    INCIDENTS,
    RECEIPTS,
    REPAIRS,
    RESULTS,
    TopicSpec,
    flow_key,
    project_key,
    split_flow_key,
)
from topics.codec import SchemaError, decode, encode
from topics.messages import (
    AuditEvent,
    DeadLetter,
    DeadlineBatch,
    IncidentEvent,
    Receipt,
    RepairRequest,
    Result,
    Snapshot,
)

__all__ = [
    "ALL_TOPICS", "AUDIT", "DEADLETTER", "DEADLINES", "INCIDENTS", "RECEIPTS", "REPAIRS", "RESULTS",
    "AuditEvent", "DeadLetter", "DeadlineBatch", "IncidentEvent", "Receipt", "RepairRequest", "Result",
    "SchemaError", "Snapshot", "TopicSpec", "decode", "encode", "flow_key", "project_key", "split_flow_key",
]
