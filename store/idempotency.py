"""Idempotency records (DESIGN.md §5): claim a key, complete it with the response, or release it.

Correct across gateway replicas because the database arbitrates: the primary key makes exactly
one request the owner of a ``(scope, key)``; the others see it in flight (409) or completed (replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

RETENTION = timedelta(hours=24)
# A claim whose owner died (kill -9 mid-request) is taken over after this long.
LEASE = timedelta(seconds=60)


class ClaimOutcome(Enum):
    OWNED = "owned"
    IN_FLIGHT = "in_flight"
    MISMATCH = "mismatch"
    REPLAY = "replay"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    response: StoredResponse | None = None


async def claim(conn: AsyncConnection, scope: str, key: str, fingerprint: bytes) -> Claim:
    inserted = await (await conn.execute(
        "INSERT INTO idempotency_records (scope, key, fingerprint, state, lease_until)"
        " VALUES (%s, %s, %s, 'in_flight', now() + %s)"
        " ON CONFLICT (scope, key) DO UPDATE SET"
        "   fingerprint = EXCLUDED.fingerprint, state = 'in_flight', lease_until = EXCLUDED.lease_until,"
        "   response_status = NULL, response_headers = NULL, response_body = NULL, created_at = now()"
        # Take over a record that expired, or an abandoned claim whose lease ran out.
        " WHERE idempotency_records.created_at < now() - %s"
        "    OR (idempotency_records.state = 'in_flight' AND idempotency_records.lease_until < now()"
        "        AND idempotency_records.fingerprint = EXCLUDED.fingerprint)"
        " RETURNING 1",
        (scope, key, fingerprint, LEASE, RETENTION),
    )).fetchone()
    if inserted:
        return Claim(ClaimOutcome.OWNED)
    row = await (await conn.execute(
        "SELECT fingerprint, state, response_status, response_headers, response_body"
        " FROM idempotency_records WHERE scope = %s AND key = %s",
        (scope, key),
    )).fetchone()
    if row is None:  # released between our two statements: try once more
        return await claim(conn, scope, key, fingerprint)
    if bytes(row["fingerprint"]) != fingerprint:
        return Claim(ClaimOutcome.MISMATCH)
    if row["state"] == "in_flight":
        return Claim(ClaimOutcome.IN_FLIGHT)
    return Claim(ClaimOutcome.REPLAY, StoredResponse(row["response_status"], row["response_headers"], bytes(row["response_body"])))


async def complete(conn: AsyncConnection, scope: str, key: str, response: StoredResponse) -> None:
    await conn.execute(
        "UPDATE idempotency_records SET state = 'completed', response_status = %s, response_headers = %s,"
        " response_body = %s WHERE scope = %s AND key = %s",
        (response.status, Jsonb(response.headers), response.body, scope, key),
    )


async def release(conn: AsyncConnection, scope: str, key: str) -> None:
    """Forget an in-flight claim whose request failed, so the client's retry can succeed."""
    await conn.execute(
        "DELETE FROM idempotency_records WHERE scope = %s AND key = %s AND state = 'in_flight'", (scope, key)
    )


async def purge_expired(conn: AsyncConnection) -> int:
    cursor = await conn.execute("DELETE FROM idempotency_records WHERE created_at < now() - %s", (RETENTION,))
    return cursor.rowcount
