"""The audit outbox: audit events written in the same transaction as the action they record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from common.ids import new_id
from store.db import Connection


@dataclass(frozen=True)
class AuditRow:
    seq: int
    event_id: str
    project_id: str | None
    actor: str
    action: str
    target: str
    data: dict[str, Any]
    source_address: str | None
    occurred_at: datetime


_COLUMNS = "seq, event_id, project_id, actor, action, target, data, source_address, occurred_at"


async def record(conn: Connection, *, project_id: str | None, actor: str, action: str, target: str,
                 data: dict[str, Any] | None = None, source_address: str | None = None) -> str:
    """Add an audit event to the outbox; call inside the action's transaction."""
    event_id = new_id("aud")
    await conn.execute(
        "INSERT INTO audit_outbox (event_id, project_id, actor, action, target, data, source_address)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (event_id, project_id, actor, action, target, Jsonb(data or {}), source_address),
    )
    return event_id


async def list_for_project(conn: Connection, project_id: str, *, before_seq: int | None,
                           limit: int) -> list[AuditRow]:
    rows = await (await conn.execute(
        f"SELECT {_COLUMNS} FROM audit_outbox WHERE project_id = %s AND (%s::bigint IS NULL OR seq < %s)"
        " ORDER BY seq DESC LIMIT %s",
        (project_id, before_seq, before_seq, limit),
    )).fetchall()
    return [AuditRow(**row) for row in rows]


async def claim_unpublished(conn: Connection, limit: int) -> list[AuditRow]:
    """Lock a batch of unpublished rows; call inside a transaction. Replicas skip each other's rows."""
    rows = await (await conn.execute(
        f"SELECT {_COLUMNS} FROM audit_outbox WHERE published_at IS NULL"
        " ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )).fetchall()
    return [AuditRow(**row) for row in rows]


async def mark_published(conn: Connection, seqs: list[int]) -> None:
    await conn.execute("UPDATE audit_outbox SET published_at = now() WHERE seq = ANY(%s)", (seqs,))
