"""Repair-callback deliveries and their attempts (``callback_deliveries``, ``callback_attempts``).

A delivery is recorded once per replay when its repair request is consumed; the delivery loop
claims the due ones, makes an attempt and records it. State lives here, not in memory, so retries
survive a restart; claims skip locked rows and lease the delivery, so replicas never attempt the
same one at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.types.json import Jsonb

from store.db import Connection
from topics import RepairRequest

PENDING, DELIVERED, FAILED, EXHAUSTED = "pending", "delivered", "failed", "exhausted"


@dataclass(frozen=True)
class Delivery:
    replay_id: str
    request: RepairRequest
    # Attempts made so far; the next one is number ``attempts + 1``.
    attempts: int


@dataclass(frozen=True)
class Attempt:
    replay_id: str
    number: int
    nonce: str
    attempted_at: datetime
    http_status: int | None
    latency_ms: int
    error: str | None

    @property
    def problem(self) -> str | None:
        """What went wrong, if anything: the error, or the status of an answer other than 2xx."""
        if self.error is not None or self.http_status is None:
            return self.error
        return None if 200 <= self.http_status < 300 else f"HTTP {self.http_status}"


async def record_delivery(conn: Connection, repair: RepairRequest) -> bool:
    """A pending delivery for the replay, due now; False when it exists already (a redelivered
    repair request), which then changes nothing."""
    cursor = await conn.execute(
        "INSERT INTO callback_deliveries (replay_id, incident_id, project_id, request, next_attempt_at)"
        " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (replay_id) DO NOTHING",
        (repair.replay_id, repair.incident_id, repair.project_id, Jsonb(repair.to_dict())),
    )
    return cursor.rowcount == 1


async def claim_due(conn: Connection, *, limit: int, lease: timedelta) -> list[Delivery]:
    """Take up to ``limit`` due deliveries and push their next attempt ``lease`` ahead, so that a
    process that dies mid-attempt leaves them to be retried after the lease, not stuck."""
    async with conn.transaction():
        rows = await (await conn.execute(
            "SELECT replay_id, request, attempts FROM callback_deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= now()"
            " ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        )).fetchall()
        if rows:
            await conn.execute(
                "UPDATE callback_deliveries SET next_attempt_at = now() + %s WHERE replay_id = ANY(%s)",
                (lease, [row["replay_id"] for row in rows]),
            )
    return [Delivery(row["replay_id"], RepairRequest.from_dict(row["request"]), row["attempts"])
            for row in rows]


async def record_attempt(conn: Connection, attempt: Attempt, *, status: str,
                         next_attempt_at: datetime | None) -> bool:
    """Store the attempt and the delivery's new state; call inside a transaction. False (and
    nothing stored) when another attempt with this number was recorded first: the lease ran out
    and a replica made it again."""
    cursor = await conn.execute(
        "UPDATE callback_deliveries SET attempts = %(number)s, status = %(status)s,"
        "   next_attempt_at = %(next)s, last_error = %(problem)s,"
        "   finished_at = CASE WHEN %(status)s = 'pending' THEN NULL ELSE now() END"
        " WHERE replay_id = %(replay_id)s AND attempts = %(number)s - 1 AND status = 'pending'",
        {"number": attempt.number, "status": status, "next": next_attempt_at, "replay_id": attempt.replay_id,
         "problem": attempt.problem},
    )
    if cursor.rowcount != 1:
        return False
    await conn.execute(
        "INSERT INTO callback_attempts"
        " (replay_id, attempt, nonce, attempted_at, http_status, latency_ms, error)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (attempt.replay_id, attempt.number, attempt.nonce, attempt.attempted_at, attempt.http_status,
         attempt.latency_ms, attempt.error),
    )
    return True


async def finish_without_attempt(conn: Connection, replay_id: str, error: str) -> None:
    """Give a delivery up before any request (no callback URL or no secret any more)."""
    await conn.execute(
        "UPDATE callback_deliveries SET status = 'failed', next_attempt_at = NULL, finished_at = now(),"
        " last_error = %s WHERE replay_id = %s AND status = 'pending'",
        (error, replay_id),
    )


async def list_attempts(conn: Connection, replay_id: str) -> list[Attempt]:
    rows = await (await conn.execute(
        "SELECT replay_id, attempt AS number, nonce, attempted_at, http_status, latency_ms, error"
        " FROM callback_attempts WHERE replay_id = %s ORDER BY attempt",
        (replay_id,),
    )).fetchall()
    return [Attempt(**row) for row in rows]
