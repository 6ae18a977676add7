"""Alerts to send (``notifications``): one row per (incident, event, destination), claimed before
anything is sent.

The alerts sink records the claims when it consumes an incident event (a redelivered event claims
nothing new) and commits the offset; the sender loop takes due rows with ``FOR UPDATE SKIP
LOCKED``, leases them, sends, and records the outcome with a conditional update. So replicas and
restarts never send one alert twice, except the one send a crash cuts off after the channel
accepted it and before its outcome was stored: that lease runs out and it is sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Connection

PENDING, SENT, FAILED = "pending", "sent", "failed"


@dataclass(frozen=True)
class Notification:
    id: int
    # What the message says, as ``sinks.channels.message.Alert.to_dict`` stored it.
    alert: dict[str, Any]
    destination_id: str
    destination_type: str
    target: str
    destination_removed: bool
    # Sends tried so far; the next is number ``attempts + 1``.
    attempts: int


@dataclass(frozen=True)
class ExhaustedCallback:
    replay_id: str
    incident_id: str
    project_id: str
    project_name: str
    mode: str
    reference: str
    reason: str | None
    last_error: str | None
    finished_at: datetime


async def claim(conn: Connection, *, project_id: str, incident_id: str, event_type: str,
                replay_id: str | None = None, alert: dict[str, Any]) -> int:
    """One pending notification per live destination of the project, due now; those that exist
    already are left as they are. Returns how many are new."""
    cursor = await conn.execute(
        "INSERT INTO notifications (incident_id, event_type, replay_id, destination_id, project_id, alert,"
        "   next_attempt_at)"
        " SELECT %s, %s, %s, d.id, d.project_id, %s, now() FROM alert_destinations d"
        " WHERE d.project_id = %s AND d.deleted_at IS NULL"
        " ON CONFLICT DO NOTHING",
        (incident_id, event_type, replay_id, Jsonb(alert), project_id),
    )
    return cursor.rowcount


async def context(conn: Connection, project_id: str, incident_id: str) -> tuple[str, str | None] | None:
    """The project's name and the incident's reason (from the read model, else from the alert of
    its opening; None when neither has it yet); None when the project does not exist."""
    row = await (await conn.execute(
        "SELECT p.name, coalesce(i.reason, (SELECT n.alert->>'reason' FROM notifications n"
        "   WHERE n.incident_id = %(incident)s AND n.event_type = 'opened' LIMIT 1)) AS reason"
        " FROM projects p LEFT JOIN incidents i ON i.id = %(incident)s WHERE p.id = %(project)s",
        {"incident": incident_id, "project": project_id},
    )).fetchone()
    return None if row is None else (row["name"], row["reason"])


async def unannounced_exhausted_callbacks(conn: Connection, *,
                                          since: timedelta) -> list[ExhaustedCallback]:
    """Repair-callback deliveries that ran out of retries within ``since`` and have no alert yet
    (``callback_deliveries``, written by the callbacks sink)."""
    rows = await (await conn.execute(
        "SELECT c.replay_id, c.incident_id, c.project_id, p.name AS project_name, c.request->>'mode' AS mode,"
        "   c.request->>'reference' AS reference, i.reason, c.last_error, c.finished_at"
        " FROM callback_deliveries c JOIN projects p ON p.id = c.project_id"
        " LEFT JOIN incidents i ON i.id = c.incident_id"
        " WHERE c.status = 'exhausted' AND c.finished_at > now() - %s"
        "   AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_type = 'callback_exhausted'"
        "                   AND n.incident_id = c.incident_id AND n.replay_id = c.replay_id)",
        (since,),
    )).fetchall()
    return [ExhaustedCallback(**row) for row in rows]


async def claim_due(conn: Connection, *, limit: int, lease: timedelta) -> list[Notification]:
    """Take up to ``limit`` due notifications and push their next attempt ``lease`` ahead, so that
    one whose sender died is sent again after the lease rather than never."""
    async with conn.transaction():
        rows = await (await conn.execute(
            "SELECT n.id, n.alert, n.destination_id, d.type AS destination_type, d.target,"
            "   d.deleted_at IS NOT NULL AS destination_removed, n.attempts"
            " FROM notifications n JOIN alert_destinations d ON d.id = n.destination_id"
            " WHERE n.status = 'pending' AND n.next_attempt_at <= now()"
            " ORDER BY n.next_attempt_at LIMIT %s FOR UPDATE OF n SKIP LOCKED",
            (limit,),
        )).fetchall()
        if rows:
            await conn.execute("UPDATE notifications SET next_attempt_at = now() + %s WHERE id = ANY(%s)",
                               (lease, [row["id"] for row in rows]))
    return [Notification(**row) for row in rows]


async def record_attempt(conn: Connection, notification_id: int, number: int, *, status: str,
                         next_attempt_at: datetime | None, error: str | None) -> bool:
    """The outcome of send number ``number``; False (nothing stored) when another process recorded
    that attempt first (the lease ran out and a replica sent it too)."""
    cursor = await conn.execute(
        "UPDATE notifications SET attempts = %(number)s, status = %(status)s, next_attempt_at = %(next)s,"
        "   last_error = %(error)s, finished_at = CASE WHEN %(status)s = 'pending' THEN NULL ELSE now() END"
        " WHERE id = %(id)s AND attempts = %(number)s - 1 AND status = 'pending'",
        {"number": number, "status": status, "next": next_attempt_at, "error": error, "id": notification_id},
    )
    return cursor.rowcount == 1
