"""The incident read model: incidents and their replays, merged from incident events.

``apply_event`` is safe to call any number of times, in any order, for the events of one incident:
each column only ever moves one way (first opened, first acknowledged, resolved is final, the
strongest resolution wins), so a redelivered or reordered event leaves the row as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from store.callback_deliveries import Attempt, DeliveryStatus, list_attempts
from store.db import Connection, one_row
from store.notifications import Sent, list_sent
from topics import IncidentEvent
from topics.fields import Mode
from topics.messages import IncidentEventType, IncidentReason, Resolution


class IncidentStatus(StrEnum):
    """An incident's ``status``; an open one may be acknowledged besides (``acknowledged_at``)."""

    OPEN = "open"
    RESOLVED = "resolved"


class ListedStatus(StrEnum):
    """What a list of incidents narrows to by status: open incidents someone acknowledged are open
    ones too."""

    OPEN = "open"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"


class ReplayOutcome(StrEnum):
    """A replay's ``outcome``: the status of the result that names it, or failed when its
    callback gave up."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Replay:
    replay_id: str
    requested_by: str
    requested_at: datetime
    attempts: int
    outcome: ReplayOutcome | None
    # The repair callback's delivery (store/callback_deliveries.py): its status and when its next
    # attempt is due; None until the callbacks sink has recorded it.
    delivery_status: DeliveryStatus | None = None
    next_attempt_at: datetime | None = None
    # Every repair-callback attempt, oldest first.
    callback_attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Incident:
    id: str
    project_id: str
    reference: str
    mode: Mode
    reason: IncidentReason
    status: IncidentStatus
    opened_at: datetime
    deadline: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution: Resolution | None
    note: str | None
    # The failed result's detail, for a failed outcome.
    detail: str | None
    replays: tuple[Replay, ...] = ()
    # Every alert about the incident, with its sends, oldest first.
    alerts: tuple[Sent, ...] = ()


_COLUMNS = ("id, project_id, reference, mode, reason, status, opened_at, deadline, acknowledged_at,"
            " resolved_at, resolution, note, detail")
_REPLAY_COLUMNS = ("r.replay_id, r.requested_by, r.requested_at, r.attempts, r.outcome,"
                   " d.status AS delivery_status, d.next_attempt_at")


def _rank(row: str) -> str:
    # A result that succeeded outranks a manual resolution: the agents emit outcome_succeeded only
    # when the flow was still in incident as the result came, so that is what the flow says.
    return f"coalesce(array_position(%(ranked)s::text[], {row}.resolution), 0)"


# The incoming resolution wins over the stored one when it ranks higher, or ranks the same and
# happened earlier: a total order, so the outcome does not depend on which event came first.
_WINS = f"({_rank('EXCLUDED')}, i.resolved_at) > ({_rank('i')}, EXCLUDED.resolved_at)"

_UPSERT = (
    "INSERT INTO incidents AS i (id, project_id, reference, mode, reason, opened_at, deadline, status,"
    "   acknowledged_at, resolved_at, resolution, note, detail)"
    " VALUES (%(id)s, %(project_id)s, %(reference)s, %(mode)s, %(reason)s, %(opened_at)s, %(deadline)s,"
    "   %(status)s, %(acknowledged_at)s, %(resolved_at)s, %(resolution)s, %(note)s, %(detail)s)"
    " ON CONFLICT (id) DO UPDATE SET"
    # A timeout that a failed result received in time shows to be a failed outcome (agents/flow.py)
    # is corrected by a second "opened" event; failed_outcome wins whatever order they come in.
    "   reason = CASE WHEN EXCLUDED.reason = %(failed_outcome)s THEN EXCLUDED.reason"
    "     ELSE coalesce(i.reason, EXCLUDED.reason) END,"
    # least() skips NULLs: the earliest time any copy of the event carried.
    "   opened_at = least(i.opened_at, EXCLUDED.opened_at),"
    "   deadline = coalesce(i.deadline, EXCLUDED.deadline),"
    # Only "opened" events of a failed outcome carry a detail, and a flow has one failed result
    # that applies: whichever copy brings it, it stays.
    "   detail = coalesce(i.detail, EXCLUDED.detail),"
    "   acknowledged_at = least(i.acknowledged_at, EXCLUDED.acknowledged_at),"
    # Resolved is final: a late "opened" never reopens.
    "   status = CASE WHEN EXCLUDED.status = %(resolved)s THEN EXCLUDED.status ELSE i.status END,"
    f"   resolved_at = CASE WHEN {_WINS} THEN EXCLUDED.resolved_at ELSE i.resolved_at END,"
    f"   resolution = CASE WHEN {_WINS} THEN EXCLUDED.resolution ELSE i.resolution END,"
    # The operator's note is kept even when a succeeded result outranks the manual resolution.
    f"   note = CASE WHEN {_WINS} THEN coalesce(EXCLUDED.note, i.note)"
    "     ELSE coalesce(i.note, EXCLUDED.note) END"
)
# The values _UPSERT compares with, lowest rank first.
_MERGE_PARAMS = {"ranked": [Resolution.MANUAL, Resolution.OUTCOME_SUCCEEDED],
                 "failed_outcome": IncidentReason.FAILED_OUTCOME, "resolved": IncidentStatus.RESOLVED}


def _row(event: IncidentEvent) -> dict[str, Any]:
    """The columns one event sets; the others stay NULL and the merge keeps what is stored."""
    at = event.occurred_at
    opened, resolved = event.type == IncidentEventType.OPENED, event.type == IncidentEventType.RESOLVED
    return {
        "id": event.incident_id, "project_id": event.project_id, "reference": event.reference,
        "mode": event.mode, "deadline": event.deadline,
        "reason": event.reason if opened else None,
        "opened_at": at if opened else None,
        "acknowledged_at": at if event.type == IncidentEventType.ACKNOWLEDGED else None,
        "status": IncidentStatus.RESOLVED if resolved else IncidentStatus.OPEN,
        "resolved_at": at if resolved else None,
        "resolution": event.resolution if resolved else None,
        "note": event.note if resolved else None,
        "detail": event.detail if opened else None,
        **_MERGE_PARAMS,
    }


async def apply_event(conn: Connection, event: IncidentEvent) -> None:
    """Merge one incident event into the read model (see the module's docstring)."""
    await apply_events(conn, [event])


async def apply_events(conn: Connection, events: Sequence[IncidentEvent]) -> None:
    """Merge incident events into the read model, in order, in one transaction."""
    async with conn.transaction():
        for event in events:
            await conn.execute(_UPSERT, _row(event))
            if event.type == IncidentEventType.REPROCESS_REQUESTED:
                if event.replay_id is None:
                    raise ValueError(f"incident {event.incident_id}: a reprocess_requested event names "
                                     "no replay_id")
                await add_replay(conn, event.replay_id, event.incident_id, event.actor, event.occurred_at)


async def add_replay(conn: Connection, replay_id: str, incident_id: str, requested_by: str,
                     requested_at: datetime) -> None:
    """The replay's row, from its incident event or its repair request, whichever comes first;
    attempts and outcome stay as they are."""
    await conn.execute(
        "INSERT INTO replays (replay_id, incident_id, requested_by, requested_at)"
        " VALUES (%s, %s, %s, %s)"
        # A retried request carries the same replay id: still one replay, first time kept.
        " ON CONFLICT (replay_id) DO UPDATE SET requested_at = least(replays.requested_at,"
        "   EXCLUDED.requested_at)",
        (replay_id, incident_id, requested_by, requested_at),
    )


async def record_replay_attempts(conn: Connection, replay_id: str, attempts: int) -> None:
    """The repair-callback sink made ``attempts`` attempts; never counts down."""
    await conn.execute("UPDATE replays SET attempts = greatest(attempts, %s) WHERE replay_id = %s",
                       (attempts, replay_id))


async def record_replay_outcome(conn: Connection, project_id: str, reference: str, replay_id: str,
                                outcome: ReplayOutcome) -> None:
    """Only for a replay of this project's flow (a result cannot touch another project's replay).
    ``succeeded`` is final: a success reported once stays, whatever failed before or after."""
    await conn.execute(
        "UPDATE replays r SET outcome = CASE WHEN r.outcome = %s THEN r.outcome ELSE %s END"
        " FROM incidents i WHERE r.replay_id = %s AND i.id = r.incident_id"
        " AND i.project_id = %s AND i.reference = %s",
        (ReplayOutcome.SUCCEEDED, outcome, replay_id, project_id, reference),
    )


async def get_incident(conn: Connection, incident_id: str, *, lock: bool = False) -> Incident | None:
    """An incident that has opened; ``lock`` holds its row until the transaction ends, so that two
    operator actions on one incident take turns. NO KEY UPDATE, not UPDATE: a replay row inserted
    meanwhile (by the callbacks sink) checks its foreign key with KEY SHARE, which UPDATE would block
    while our own insert of that replay waits on the sink — a deadlock."""
    rows = await (await conn.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE id = %s AND opened_at IS NOT NULL"
        + (" FOR NO KEY UPDATE" if lock else ""),
        (incident_id,),
    )).fetchall()
    found = await _with_replays(conn, rows)
    return found[0] if found else None


@dataclass(frozen=True)
class IncidentFilter:
    """What a list of incidents is narrowed to; None matches every value."""

    status: ListedStatus | None = None
    mode: Mode | None = None
    reason: IncidentReason | None = None
    reference: str | None = None


async def list_incidents(conn: Connection, project_id: str, *, where: IncidentFilter,
                         before: tuple[datetime, str] | None, limit: int) -> list[Incident]:
    """Newest first (by opened_at, then id), only those matching ``where``."""
    rows = await (await conn.execute(
        f"SELECT {_COLUMNS} FROM incidents"
        " WHERE project_id = %(project)s AND opened_at IS NOT NULL"
        # "acknowledged" narrows to the open incidents someone acknowledged.
        " AND (%(status)s::text IS NULL OR status = %(status)s"
        "   OR (%(status)s = %(acknowledged)s AND status = %(open)s AND acknowledged_at IS NOT NULL))"
        " AND (%(mode)s::text IS NULL OR mode = %(mode)s)"
        " AND (%(reason)s::text IS NULL OR reason = %(reason)s)"
        " AND (%(reference)s::text IS NULL OR reference = %(reference)s)"
        " AND (%(at)s::timestamptz IS NULL OR (opened_at, id) < (%(at)s, %(id)s))"
        " ORDER BY opened_at DESC, id DESC LIMIT %(limit)s",
        {"project": project_id, "status": where.status, "acknowledged": ListedStatus.ACKNOWLEDGED,
         "open": IncidentStatus.OPEN, "mode": where.mode, "reason": where.reason,
         "reference": where.reference, "at": before[0] if before else None,
         "id": before[1] if before else None, "limit": limit},
    )).fetchall()
    return await _with_replays(conn, rows)


async def count_by_status(conn: Connection, project_id: str) -> dict[str, int]:
    """How many of the project's incidents are open, open and acknowledged, and resolved."""
    row = await one_row(await conn.execute(
        "SELECT count(*) FILTER (WHERE status = %(open)s) AS open,"
        "   count(*) FILTER (WHERE status = %(open)s AND acknowledged_at IS NOT NULL) AS acknowledged,"
        "   count(*) FILTER (WHERE status = %(resolved)s) AS resolved"
        " FROM incidents WHERE project_id = %(project)s AND opened_at IS NOT NULL",
        {"open": IncidentStatus.OPEN, "resolved": IncidentStatus.RESOLVED, "project": project_id},
    ), f"the incident counts of project {project_id}")
    return dict(row)


async def count_open(conn: Connection, project_ids: list[str]) -> dict[str, int]:
    """Open incidents per project, for those that have any."""
    rows = await (await conn.execute(
        "SELECT project_id, count(*) AS n FROM incidents"
        " WHERE project_id = ANY(%s) AND status = %s AND opened_at IS NOT NULL GROUP BY project_id",
        (project_ids, IncidentStatus.OPEN),
    )).fetchall()
    return {row["project_id"]: row["n"] for row in rows}


async def _with_replays(conn: Connection, rows: list[dict[str, Any]]) -> list[Incident]:
    if not rows:
        return []
    replays: dict[str, list[Replay]] = {row["id"]: [] for row in rows}
    found = await (await conn.execute(
        f"SELECT r.incident_id, {_REPLAY_COLUMNS} FROM replays r"
        " LEFT JOIN callback_deliveries d ON d.replay_id = r.replay_id WHERE r.incident_id = ANY(%s)"
        " ORDER BY r.requested_at, r.replay_id",
        (list(replays),),
    )).fetchall()
    attempts: dict[str, list[Attempt]] = {replay["replay_id"]: [] for replay in found}
    for attempt in await list_attempts(conn, list(attempts)):
        attempts[attempt.replay_id].append(attempt)
    for replay in found:
        outcome, delivery_status = replay.pop("outcome"), replay.pop("delivery_status")
        replays[replay.pop("incident_id")].append(Replay(
            **replay, outcome=None if outcome is None else ReplayOutcome(outcome),
            delivery_status=None if delivery_status is None else DeliveryStatus(delivery_status),
            callback_attempts=tuple(attempts[replay["replay_id"]])))
    alerts: dict[str, list[Sent]] = {row["id"]: [] for row in rows}
    for sent in await list_sent(conn, list(alerts)):
        alerts[sent.incident_id].append(sent)
    return [Incident(**{**row, "status": IncidentStatus(row["status"]), "mode": Mode(row["mode"]),
                        "reason": IncidentReason(row["reason"]),
                        "resolution": None if row["resolution"] is None else Resolution(row["resolution"])},
                     replays=tuple(replays[row["id"]]), alerts=tuple(alerts[row["id"]]))
            for row in rows]
