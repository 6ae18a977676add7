"""The document the agents' table keeps per flow key ``<project_id>:<reference>``.

A key holds one state machine per mode (``agents.flow``): test and live traffic of a reference
share the key, and so its partition, but never a state. Beside the states: the key's partition
(the deadline index is rebuilt per partition) and, per input topic, the offset of the last
message that changed the document (a message at or before it is a replay after a crash).

    {"modes": {"test": <state>, "live": <state>}, "partition": 3, "offsets": {"receipts": 41}}

Documents written before modes were kept hold one state at the top level; they read as the
state of their flow's mode.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agents import flow as machine
from topics.fields import Mode

MODES_FIELD = "modes"
PARTITION_FIELD = "partition"
OFFSETS_FIELD = "offsets"
# What a state's mode was when documents had one state and its flow did not say (results held
# before any receipt): such results then join only test traffic, never mark live flows applied.
UNKNOWN_MODE = Mode.TEST

Document = dict[str, Any]


def states_of(doc: Document | None) -> dict[str, dict[str, Any]]:
    """Each mode's stored state (JSON), as ``agents.flow.state_from_json`` reads it."""
    if not doc:
        return {}
    if MODES_FIELD in doc:
        return dict(doc[MODES_FIELD])
    flow = doc.get("flow")
    return {UNKNOWN_MODE if flow is None else flow["mode"]: doc}


def document(states: dict[str, dict[str, Any]], *, partition: int, offsets: dict[str, int]) -> Document:
    """The document holding ``states``, with the message that made it recorded in ``offsets``."""
    return {MODES_FIELD: states, PARTITION_FIELD: partition, OFFSETS_FIELD: offsets}


def offsets_of(doc: Document | None) -> dict[str, int]:
    return dict((doc or {}).get(OFFSETS_FIELD, {}))


def changed_by(doc: Document | None, kind: str, offset: int) -> bool:
    """Whether the message at ``offset`` of the ``kind`` topic changed this document already."""
    recorded = offsets_of(doc).get(kind)
    return recorded is not None and offset <= recorded


def pending_deadline(doc: Document | None) -> datetime | None:
    """The earliest deadline of the document's pending flows, else None: what the deadline index
    needs, read without loading whole states (it reads every stored document after a rebalance)."""
    deadlines = [deadline for state in states_of(doc).values()
                 if (deadline := machine.pending_deadline(state)) is not None]
    return min(deadlines, default=None)


def partition_in(doc: Document) -> int | None:
    """The partition the document was written on (None if written before it was recorded)."""
    partition = doc.get(PARTITION_FIELD)
    return None if partition is None else int(partition)


def forgettable(doc: Document | None, *, retention: timedelta, now: datetime) -> bool:
    """Whether any of the document's states may be forgotten now (``agents.flow.forgettable``)."""
    return any(machine.forgettable(state, retention=retention, now=now) for state in states_of(doc).values())
