"""The flow read model: what ``GET /api/v1/flows/{reference}`` answers from.

A flow is one cycle of a reference in one mode: ``(project_id, mode, reference, cycle)``. A receipt
for a reference whose flow is closed starts the next cycle; the agents forget closed cycles after a
retention period, and a receipt after that starts at cycle 1 again (with a later ``received_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from store.db import Connection
from topics.fields import Mode
from topics.messages import FlowStatus


@dataclass(frozen=True)
class FlowView:
    project_id: str
    mode: Mode
    reference: str
    status: FlowStatus
    event_type: str
    effect_type: str
    received_at: datetime
    deadline: datetime
    version: int
    # The received_at of the newest receipt recorded on this cycle (the first one's is received_at).
    last_receipt_at: datetime
    cycle: int = 1
    # Receipts recorded on this cycle; a repeat moves nothing else.
    receipts: int = 1
    applied_at: datetime | None = None
    incident_id: str | None = None
    # A failed result's detail (agents/flow.py keeps it once a failed result applied).
    detail: str | None = None


@dataclass(frozen=True)
class CycleSummary:
    """One cycle of a reference, as the flow document lists them."""

    cycle: int
    status: FlowStatus
    received_at: datetime
    deadline: datetime
    incident_id: str | None


_COLUMNS = tuple(FlowView.__dataclass_fields__)
_KEY = ("project_id", "mode", "reference", "cycle")
# Grow monotonically, whichever event (a transition or a repeated receipt) brings them.
_COUNTED = ("receipts", "last_receipt_at")
# Follow the newest transition of the cycle.
_TRANSITION = tuple(c for c in _COLUMNS if c not in _KEY and c not in _COUNTED)


async def upsert_flow(conn: Connection, flow: FlowView) -> bool:
    """Merge ``flow`` (from a transition or a repeated receipt) into its cycle's row; True when the
    row changed. The transition's fields are taken only from a newer version; receipts and
    last_receipt_at only grow. So a redelivered, replayed or reordered event changes nothing.

    The cycle's ``received_at`` never changes, so an event with an earlier one belongs to a cycle
    the agents have forgotten since (a replayed event of it, arriving after a new cycle of the
    same number started): it must not touch the new cycle's row."""
    return await upsert_flows(conn, [flow]) == 1


async def upsert_flows(conn: Connection, flows: Sequence[FlowView]) -> int:
    """Merge each of ``flows`` in order, as ``upsert_flow`` would one after the other, in one
    statement (more only when a cycle comes again with another received_at); how many rows
    changed. Flows of one cycle with one received_at are merged here first, as the row would merge
    them: an INSERT may not touch one row twice."""
    changed = 0
    for rows in _rounds(flows):
        params = [asdict(flow) for flow in rows]
        values = ", ".join(f"({', '.join(f'%({c}_{n})s' for c in _COLUMNS)})" for n in range(len(rows)))
        cursor = await conn.execute(
            f"{_UPSERT_INTO} {values} {_UPSERT_MERGE}",
            {f"{c}_{n}": value for n, row in enumerate(params) for c, value in row.items()},
        )
        changed += cursor.rowcount
    return changed


def _rounds(flows: Sequence[FlowView]) -> list[list[FlowView]]:
    """``flows`` as successive statements' rows: each cycle at most once per statement, in the
    order its flows came."""
    rounds: list[dict[tuple[object, ...], FlowView]] = []
    for flow in flows:
        key = tuple(getattr(flow, c) for c in _KEY)
        last = max((n for n, found in enumerate(rounds) if key in found), default=None)
        if last is not None and rounds[last][key].received_at == flow.received_at:
            rounds[last][key] = _merged(rounds[last][key], flow)
            continue
        at = 0 if last is None else last + 1
        if at == len(rounds):
            rounds.append({})
        rounds[at][key] = flow
    return [list(found.values()) for found in rounds]


def _merged(earlier: FlowView, later: FlowView) -> FlowView:
    """Two flows of one cycle merged as the upsert merges the second into the first's row."""
    newest = later if earlier.version < later.version else earlier
    return replace(newest, **{c: max(getattr(earlier, c), getattr(later, c)) for c in _COUNTED})


_NEWER = "flows.version < EXCLUDED.version"
_UPSERT_INTO = f"INSERT INTO flows ({', '.join(_COLUMNS)}) VALUES"
_UPSERT_MERGE = (
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join([*(f"{c} = CASE WHEN {_NEWER} THEN EXCLUDED.{c} ELSE flows.{c} END" for c in _TRANSITION),
                 *(f"{c} = GREATEST(flows.{c}, EXCLUDED.{c})" for c in _COUNTED)])
    + ", updated_at = now()"
    " WHERE flows.received_at <= EXCLUDED.received_at"
    f" AND ({' OR '.join([_NEWER, *(f'flows.{c} < EXCLUDED.{c}' for c in _COUNTED)])})"
)


async def forget_flows(conn: Connection, project_id: str, mode: str, reference: str, *, cycle: int,
                       received_at: datetime) -> int:
    """Delete the cycles up to ``cycle`` of a reference the agents forgot; how many went. Only
    cycles received no later than the forgotten one: a cycle 1 started after the forgetting is
    never deleted by a late or replayed forget. (Incidents stay: they are operators' history.)"""
    cursor = await conn.execute(
        "DELETE FROM flows WHERE project_id = %s AND mode = %s AND reference = %s"
        " AND cycle <= %s AND received_at <= %s",
        (project_id, mode, reference, cycle, received_at),
    )
    return cursor.rowcount


async def get_flow(conn: Connection, project_id: str, reference: str, *, mode: str,
                   cycle: int | None = None) -> FlowView | None:
    """The flow of ``reference`` in ``mode``: its cycle ``cycle``, or its latest."""
    row = await (await conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM flows"
        " WHERE project_id = %s AND mode = %s AND reference = %s AND (%s::int IS NULL OR cycle = %s)"
        " ORDER BY cycle DESC LIMIT 1",
        (project_id, mode, reference, cycle, cycle),
    )).fetchone()
    return None if row is None else _flow(row)


async def get_flow_of_incident(conn: Connection, project_id: str, mode: str, reference: str,
                               incident_id: str) -> FlowView | None:
    """The cycle of ``reference`` whose incident is ``incident_id`` (a later cycle may exist)."""
    row = await (await conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM flows"
        " WHERE project_id = %s AND mode = %s AND reference = %s AND incident_id = %s",
        (project_id, mode, reference, incident_id),
    )).fetchone()
    return None if row is None else _flow(row)


async def list_cycles(conn: Connection, project_id: str, mode: str, reference: str, *,
                      limit: int) -> list[CycleSummary]:
    """The newest ``limit`` cycles of ``reference`` in ``mode``, newest first."""
    rows = await (await conn.execute(
        "SELECT cycle, status, received_at, deadline, incident_id FROM flows"
        " WHERE project_id = %s AND mode = %s AND reference = %s ORDER BY cycle DESC LIMIT %s",
        (project_id, mode, reference, limit),
    )).fetchall()
    return [CycleSummary(**{**row, "status": FlowStatus(row["status"])}) for row in rows]


def _flow(row: dict[str, Any]) -> FlowView:
    return FlowView(**{**row, "mode": Mode(row["mode"]), "status": FlowStatus(row["status"])})
