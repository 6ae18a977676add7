"""Alerts to send (``notifications``) and every send of each (``notification_attempts``): one row
per (incident, event, replay, destination), claimed before anything is sent.

The alerts sink records the claims when it consumes an incident event (a redelivered event claims
nothing new) and commits the offset; the sender loop takes due rows with ``FOR UPDATE SKIP
LOCKED`` and leases them, records each send as an attempt before making it and its outcome after
(``store/attempts.py``, shared with repair callbacks). So replicas and restarts never send one
alert twice unrecorded: a send a crash cuts off stays an attempt without outcome, which the next
claim after the lease records as interrupted before the alert is sent again (at least once, every
send on record).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb

from store.attempts import Ledger
from store.callback_deliveries import DeliveryStatus
from store.db import Connection
from topics.messages import IncidentEventType


class NotificationStatus(StrEnum):
    """A notification's ``status``: pending while sends are due, then sent or failed."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


NOTIFICATIONS = Ledger(items="notifications", key="id", attempts="notification_attempts",
                       item_key="notification_id")
# The error of a send whose outcome was never recorded: the channel may or may not have accepted it.
INTERRUPTED = "no outcome recorded: the alerts sink stopped during the send"


@dataclass(frozen=True)
class Notification:
    id: int
    # What the message says, as ``channels.message.Alert.to_dict`` stored it.
    alert: dict[str, Any]
    destination_id: str
    destination_type: str
    target: str
    destination_removed: bool
    # Sends begun so far; the next is number ``attempts + 1``.
    attempts: int
    # Send number ``attempts`` was begun and its outcome never recorded, and its lease ran out.
    interrupted: bool = False


@dataclass(frozen=True)
class Attempt:
    notification_id: int
    number: int
    attempted_at: datetime
    # None while the send is under way or when the channel accepted it.
    error: str | None
    # None while the send is under way.
    finished_at: datetime | None


@dataclass(frozen=True)
class Sent:
    """An alert about an incident as operators see it: where it went, what came of it, and every
    send (never the message's text nor the destination's target: a webhook URL is a secret)."""

    incident_id: str
    event_type: str
    replay_id: str | None
    destination_id: str
    destination_type: str
    status: NotificationStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sends: tuple[Attempt, ...] = ()


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
        "   WHERE n.incident_id = %(incident)s AND n.event_type = %(opened)s LIMIT 1)) AS reason"
        " FROM projects p LEFT JOIN incidents i ON i.id = %(incident)s WHERE p.id = %(project)s",
        {"incident": incident_id, "project": project_id, "opened": IncidentEventType.OPENED},
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
        " WHERE c.status = %s AND c.finished_at > now() - %s"
        "   AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_type = 'callback_exhausted'"
        "                   AND n.incident_id = c.incident_id AND n.replay_id = c.replay_id)",
        (DeliveryStatus.EXHAUSTED, since),
    )).fetchall()
    return [ExhaustedCallback(**row) for row in rows]


async def claim_due(conn: Connection, *, limit: int, lease: timedelta) -> list[Notification]:
    """Take up to ``limit`` due notifications and push their next attempt ``lease`` ahead, so that
    one whose sender died is taken again after the lease rather than never."""
    rows = await NOTIFICATIONS.claim_due(
        conn, columns="i.id, i.alert, i.destination_id, d.type AS destination_type, d.target,"
                      " d.deleted_at IS NOT NULL AS destination_removed, i.attempts",
        joins="JOIN alert_destinations d ON d.id = i.destination_id", limit=limit, lease=lease)
    return [Notification(**row) for row in rows]


async def begin_attempt(conn: Connection, notification_id: int, number: int, attempted_at: datetime) -> bool:
    """Record send number ``number`` as begun, before it is made; call inside a transaction. False
    (nothing stored) when it was begun already: another process claimed it after our lease ran out."""
    return await NOTIFICATIONS.begin(conn, notification_id, number, attempted_at)


async def finish_attempt(conn: Connection, notification_id: int, number: int, *, status: NotificationStatus,
                         next_attempt_at: datetime | None, error: str | None) -> bool:
    """The outcome of begun send ``number`` and the notification's new state; call inside a
    transaction. False (nothing stored) when that send has an outcome already: its lease ran out and
    the next claim recorded it as interrupted."""
    return await NOTIFICATIONS.finish(conn, notification_id, number, {"error": error}, status=status,
                                      next_attempt_at=next_attempt_at, problem=error)


async def finish_without_attempt(conn: Connection, notification_id: int, error: str) -> None:
    """Give a notification up before any send (its destination was removed)."""
    await NOTIFICATIONS.finish_without_attempt(conn, notification_id, error)


async def list_sent(conn: Connection, incident_ids: list[str]) -> list[Sent]:
    """Every alert about these incidents with its sends, oldest first."""
    rows = await (await conn.execute(
        "SELECT n.id, n.incident_id, n.event_type, n.replay_id, n.destination_id,"
        "   d.type AS destination_type, n.status, n.attempts, n.last_error, n.created_at"
        " FROM notifications n JOIN alert_destinations d ON d.id = n.destination_id"
        " WHERE n.incident_id = ANY(%s) ORDER BY n.created_at, n.id",
        (incident_ids,),
    )).fetchall()
    sends: dict[int, list[Attempt]] = {row["id"]: [] for row in rows}
    for attempt in await list_attempts(conn, list(sends)):
        sends[attempt.notification_id].append(attempt)
    return [Sent(**{k: v for k, v in row.items() if k not in ("id", "status")},
                 status=NotificationStatus(row["status"]), sends=tuple(sends[row["id"]]))
            for row in rows]


async def list_attempts(conn: Connection, notification_ids: list[int]) -> list[Attempt]:
    """Every send of these notifications, by notification, oldest first."""
    rows = await (await conn.execute(
        "SELECT notification_id, attempt AS number, attempted_at, error, finished_at"
        " FROM notification_attempts WHERE notification_id = ANY(%s) ORDER BY notification_id, attempt",
        (notification_ids,),
    )).fetchall()
    return [Attempt(**row) for row in rows]
