"""A project's alert destinations (email addresses, Slack incoming webhooks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from common.ids import new_id
from store.db import Connection, one_row


@dataclass(frozen=True)
class Destination:
    id: str
    project_id: str
    type: str
    target: str
    created_at: datetime
    # Why the last alert to it failed for good, and when; None once one is accepted again.
    last_failure: str | None = None
    failed_at: datetime | None = None


_COLUMNS = "id, project_id, type, target, created_at, last_failure, failed_at"


async def add_destination(conn: Connection, project_id: str, type_: str, target: str) -> Destination:
    destination_id = new_id("dst")
    return Destination(**await one_row(await conn.execute(
        f"INSERT INTO alert_destinations (id, project_id, type, target) VALUES (%s, %s, %s, %s)"
        f" RETURNING {_COLUMNS}",
        (destination_id, project_id, type_, target),
    ), f"the new alert destination {destination_id}"))


async def list_destinations(conn: Connection, project_id: str, *, before: tuple[datetime, str] | None = None,
                            limit: int | None = None) -> list[Destination]:
    """Newest first (by created_at, then id), from after ``before``; every one without ``limit``."""
    rows = await (await conn.execute(
        f"SELECT {_COLUMNS} FROM alert_destinations WHERE project_id = %(project)s AND deleted_at IS NULL"
        " AND (%(at)s::timestamptz IS NULL OR (created_at, id) < (%(at)s, %(id)s))"
        " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
        {"project": project_id, "at": before[0] if before else None, "id": before[1] if before else None,
         "limit": limit},
    )).fetchall()
    return [Destination(**row) for row in rows]


async def remove_destination(conn: Connection, project_id: str,
                             destination_id: str) -> Destination | None:
    row = await (await conn.execute(
        f"UPDATE alert_destinations SET deleted_at = now()"
        f" WHERE project_id = %s AND id = %s AND deleted_at IS NULL"
        f" RETURNING {_COLUMNS}",
        (project_id, destination_id),
    )).fetchone()
    return None if row is None else Destination(**row)


async def get_destination(conn: Connection, project_id: str, destination_id: str) -> Destination | None:
    row = await (await conn.execute(
        f"SELECT {_COLUMNS} FROM alert_destinations WHERE project_id = %s AND id = %s AND deleted_at IS NULL",
        (project_id, destination_id),
    )).fetchone()
    return None if row is None else Destination(**row)


async def record_outcome(conn: Connection, destination_id: str, permanent_failure: str | None) -> None:
    """After a send: a permanent failure is kept for operators; an accepted alert clears it."""
    await conn.execute(
        "UPDATE alert_destinations SET last_failure = %s, failed_at = CASE WHEN %s::text IS NULL THEN NULL"
        " ELSE now() END WHERE id = %s AND last_failure IS DISTINCT FROM %s",
        (permanent_failure, permanent_failure, destination_id, permanent_failure),
    )
