"""The flow read model: what ``GET /api/v1/flows/{reference}`` answers from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from store.db import Connection


@dataclass(frozen=True)
class FlowView:
    project_id: str
    reference: str
    mode: str
    status: str
    event_type: str
    effect_type: str
    received_at: datetime
    deadline: datetime
    version: int
    applied_at: datetime | None = None
    incident_id: str | None = None
    # A failed result's detail (agents/flow.py keeps it once a failed result applied).
    detail: str | None = None


_COLUMNS = tuple(FlowView.__dataclass_fields__)


async def upsert_flow(conn: Connection, flow: FlowView) -> bool:
    """Write ``flow`` unless a newer version is already stored; True when it was written."""
    names = ", ".join(_COLUMNS)
    placeholders = ", ".join(f"%({c})s" for c in _COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c not in ("project_id", "reference"))
    cursor = await conn.execute(
        f"INSERT INTO flows ({names}) VALUES ({placeholders})"
        f" ON CONFLICT (project_id, reference) DO UPDATE SET {updates}, updated_at = now()"
        " WHERE flows.version < EXCLUDED.version",
        asdict(flow),
    )
    return cursor.rowcount == 1


async def get_flow(conn: Connection, project_id: str, reference: str) -> FlowView | None:
    row = await (await conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM flows WHERE project_id = %s AND reference = %s",
        (project_id, reference),
    )).fetchone()
    return None if row is None else FlowView(**row)
