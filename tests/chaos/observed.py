"""What the stack wrote, read once at the end of the run: the read model, the audit log, the
callback deliveries and their attempts, the alerts sent."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import psycopg
from psycopg.rows import dict_row

_ALERT_SUBJECT = re.compile(r"Incident (opened|resolved): .*reference (\S+)$")


@dataclass
class Observed:
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    incidents: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    # reference → [(version, action)], in the order the audit sink appended them
    transitions: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    replays_by_incident: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    replay_attempts: dict[str, int] = field(default_factory=dict)
    # (reference, "opened"|"resolved") → emails received
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (reference, "opened"|"resolved") → sends on record (attempts begun) for that alert
    alert_attempts: Counter[tuple[str, str]] = field(default_factory=Counter)


async def read_observed(database_url: str, project_id: str, mails: list[EmailMessage]) -> Observed:
    seen = Observed()
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        for row in await _rows(conn, "SELECT reference, status, deadline, incident_id, version FROM flows"
                                     " WHERE project_id = %s", project_id):
            seen.flows[row["reference"]] = row
        for row in await _rows(conn, "SELECT id, reference, reason, status, resolution, opened_at, deadline"
                                     " FROM incidents WHERE project_id = %s", project_id):
            seen.incidents[row["reference"]].append(row)
        for row in await _rows(conn, "SELECT target, action, (data->>'version')::int AS version"
                                     " FROM audit_log WHERE chain = %s AND action LIKE 'flow.%%'"
                                     " ORDER BY seq",
                               project_id):
            seen.transitions[row["target"]].append((row["version"], row["action"]))
        for row in await _rows(conn, "SELECT replay_id, status, attempts FROM callback_deliveries"
                                     " WHERE project_id = %s", project_id):
            seen.deliveries[row["replay_id"]] = row
        for row in await _rows(conn, "SELECT a.replay_id, a.attempt, a.nonce, a.http_status"
                                     " FROM callback_attempts a JOIN callback_deliveries d USING (replay_id)"
                                     " WHERE d.project_id = %s ORDER BY a.attempt", project_id):
            seen.attempts[row["replay_id"]].append(row)
        for row in await _rows(conn, "SELECT r.replay_id, r.incident_id, r.attempts FROM replays r"
                                     " JOIN incidents i ON i.id = r.incident_id WHERE i.project_id = %s",
                               project_id):
            seen.replays_by_incident[row["incident_id"]].append(row["replay_id"])
            seen.replay_attempts[row["replay_id"]] = row["attempts"]
        for row in await _rows(conn, "SELECT i.reference, n.event_type, n.attempts FROM notifications n"
                                     " JOIN incidents i ON i.id = n.incident_id"
                                     " WHERE n.project_id = %s AND n.event_type IN ('opened', 'resolved')",
                               project_id):
            seen.alert_attempts[(row["reference"], row["event_type"])] += row["attempts"]
    for mail in mails:
        match = _ALERT_SUBJECT.search(str(mail["Subject"]))
        if match:
            seen.alerts[(match.group(2), match.group(1))] += 1
    return seen


async def pending_work(database_url: str, project_id: str) -> int:
    """Callbacks and alerts still due: the run has not drained while any is left."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT (SELECT count(*) FROM callback_deliveries WHERE project_id = %(p)s"
            "        AND status = 'pending')"
            " + (SELECT count(*) FROM notifications WHERE project_id = %(p)s AND status = 'pending')",
            {"p": project_id})
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def _rows(conn: psycopg.AsyncConnection[dict[str, Any]], query: str,
                project_id: str) -> list[dict[str, Any]]:
    cursor = await conn.execute(query, (project_id,))
    return await cursor.fetchall()


def timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()

