"""Repair-callback deliveries and their attempts (``callback_deliveries``, ``callback_attempts``).

A delivery is recorded once per replay when its repair request is consumed; the delivery loop
claims the due ones and makes an attempt: recorded as begun before its request is sent, its
outcome recorded after. State lives here, not in memory, so retries survive a restart; claims skip
locked rows and lease the delivery, so replicas never attempt the same one at once. An attempt
still without outcome when its lease ran out was interrupted (the process making it stopped): the
next claim says so, and it is recorded like any failed attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb

from common.callback_request import Outcome
from store.attempts import Ledger
from store.db import Connection
from topics import RepairRequest


class DeliveryStatus(StrEnum):
    """A delivery's ``status``: pending while attempts are due, then delivered, failed (an answer
    that retrying would not change) or exhausted (out of attempts)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXHAUSTED = "exhausted"


DELIVERIES = Ledger(items="callback_deliveries", key="replay_id", attempts="callback_attempts",
                    item_key="replay_id")


@dataclass(frozen=True)
class Delivery:
    replay_id: str
    request: RepairRequest
    # Attempts begun so far; the next one is number ``attempts + 1``.
    attempts: int
    # Attempt number ``attempts`` was begun and its outcome never recorded, and its lease ran out.
    interrupted: bool = False


# The outcome of an attempt whose request may or may not have reached the receiver.
INTERRUPTED = Outcome(http_status=None, latency_ms=None,
                      error="no outcome recorded: the callbacks sink stopped during the attempt")


@dataclass(frozen=True)
class Attempt:
    replay_id: str
    number: int
    nonce: str
    attempted_at: datetime
    # None while the attempt is under way.
    outcome: Outcome | None
    finished_at: datetime | None


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
    process that dies mid-attempt leaves them to be taken again after the lease, not stuck."""
    rows = await DELIVERIES.claim_due(conn, columns="i.replay_id, i.request, i.attempts", limit=limit,
                                      lease=lease)
    return [Delivery(row["replay_id"], RepairRequest.from_dict(row["request"]), row["attempts"],
                     row["interrupted"])
            for row in rows]


async def begin_attempt(conn: Connection, replay_id: str, number: int, nonce: str,
                        attempted_at: datetime) -> bool:
    """Record attempt ``number`` as begun, before its request is sent; call inside a transaction.
    False (and nothing stored) when that attempt was begun already: another replica claimed the
    delivery after our lease ran out."""
    return await DELIVERIES.begin(conn, replay_id, number, attempted_at, nonce=nonce)


async def finish_attempt(conn: Connection, replay_id: str, number: int, outcome: Outcome, *,
                         status: DeliveryStatus, next_attempt_at: datetime | None) -> bool:
    """Store the outcome of begun attempt ``number`` and the delivery's new state; call inside a
    transaction. False (and nothing stored) when that attempt has an outcome already: its lease
    ran out and the next claim recorded it as interrupted."""
    return await DELIVERIES.finish(
        conn, replay_id, number,
        {"http_status": outcome.http_status, "latency_ms": outcome.latency_ms, "error": outcome.error},
        status=status, next_attempt_at=next_attempt_at, problem=outcome.problem)


async def finish_without_attempt(conn: Connection, replay_id: str, error: str) -> None:
    """Give a delivery up before any request (no callback URL or no secret any more)."""
    await DELIVERIES.finish_without_attempt(conn, replay_id, error)


async def list_attempts(conn: Connection, replay_ids: list[str]) -> list[Attempt]:
    """Every attempt of these replays, by replay, oldest first."""
    rows = await (await conn.execute(
        "SELECT replay_id, attempt, nonce, attempted_at, http_status, latency_ms, error, finished_at"
        " FROM callback_attempts WHERE replay_id = ANY(%s) ORDER BY replay_id, attempt",
        (replay_ids,),
    )).fetchall()
    return [_attempt(row) for row in rows]


def _attempt(row: dict[str, Any]) -> Attempt:
    finished = row["finished_at"] is not None
    outcome = Outcome(row["http_status"], row["latency_ms"], row["error"]) if finished else None
    return Attempt(replay_id=row["replay_id"], number=row["attempt"], nonce=row["nonce"],
                   attempted_at=row["attempted_at"], outcome=outcome, finished_at=row["finished_at"])
