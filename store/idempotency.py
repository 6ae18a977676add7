"""Idempotency records: claim a key, complete it with the response, or release it.

Correct across gateway replicas because the database arbitrates: the primary key makes exactly
one request the owner of a ``(scope, key)``; the others see it in flight (409) or completed (replay).

``claim_many`` and ``complete_claimed`` do the same for many concurrent requests at once, usually
in one statement each (the ingest path's batching, ``api_gateway/idempotency_batcher.py``), with
the same outcomes as ``claim`` and ``complete`` one by one. Their requests know their answer before
they act (a 202 once Kafka has the signal), so the claim stores it and the completion only marks
it final: a multi-row update that carried every response cost PostgreSQL three times as much.

A claim whose lease ran out without a completion (its owner died, or the database was away when
it tried to complete) is taken over by a retry of the same request, which keeps the first claim's
stored answer and ``received_at``: if the first signal reached Kafka, the retry publishes the very
same one again (the consumers drop the repeat) and answers what the first request answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from store.db import Connection

RETENTION = timedelta(hours=24)
# A claim whose owner died (kill -9 mid-request) is taken over after this long.
LEASE = timedelta(seconds=60)


class RecordState(StrEnum):
    """A record's ``state``: in flight while its request is answered, then completed."""

    IN_FLIGHT = "in_flight"
    COMPLETED = "completed"


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
    # REPLAY: the answer to give again. OWNED by taking over an abandoned claim that stored its
    # answer: that answer and when its request was received, which the new owner must keep.
    response: StoredResponse | None = None
    received_at: datetime | None = None

    @property
    def taken_over(self) -> bool:
        """Owned by taking over an abandoned claim whose answer stands (see the module's doc)."""
        return self.outcome is ClaimOutcome.OWNED and self.response is not None


_OWNED = Claim(ClaimOutcome.OWNED)


async def claim(conn: Connection, scope: str, key: str, fingerprint: bytes,
                answer: StoredResponse | None = None, received_at: datetime | None = None) -> Claim:
    """Own ``key`` in ``scope`` for a request, or learn why not. ``answer``: the response the
    request will give once its action succeeds, stored now for ``complete_claimed``, with the
    moment the request was ``received_at``."""
    status, headers, body = ((answer.status, Jsonb(answer.headers), answer.body) if answer
                             else (None, None, None))
    inserted = await (await conn.execute(
        "INSERT INTO idempotency_records (scope, key, fingerprint, state, lease_until,"
        "   response_status, response_headers, response_body, received_at)"
        " VALUES (%s, %s, %s, 'in_flight', now() + %s, %s, %s, %s, %s)"
        " ON CONFLICT (scope, key) DO UPDATE SET"
        "   fingerprint = EXCLUDED.fingerprint, state = 'in_flight', lease_until = EXCLUDED.lease_until,"
        "   response_status = EXCLUDED.response_status, response_headers = EXCLUDED.response_headers,"
        "   response_body = EXCLUDED.response_body, received_at = EXCLUDED.received_at, created_at = now()"
        # A record that expired is anyone's, as if it had never been.
        " WHERE idempotency_records.created_at < now() - %s"
        " RETURNING 1",
        (scope, key, fingerprint, LEASE, status, headers, body, received_at, RETENTION),
    )).fetchone()
    if inserted:
        return _OWNED
    row = await (await conn.execute(
        "SELECT fingerprint, state, response_status, response_headers, response_body,"
        "  lease_until < now() AS lease_over"
        " FROM idempotency_records WHERE scope = %s AND key = %s",
        (scope, key),
    )).fetchone()
    if row is None:  # released between our two statements: try once more
        return await claim(conn, scope, key, fingerprint, answer, received_at)
    if _abandoned(row, fingerprint):
        return await _take_over(conn, scope, key, fingerprint, answer, received_at)
    return _classified(row, fingerprint)


def _abandoned(row: dict[str, Any], fingerprint: bytes) -> bool:
    """An in-flight claim of the same request whose lease ran out: its owner will not complete it."""
    return (row["state"] == RecordState.IN_FLIGHT and row["lease_over"]
            and bytes(row["fingerprint"]) == fingerprint)


async def _take_over(conn: Connection, scope: str, key: str, fingerprint: bytes,
                     answer: StoredResponse | None, received_at: datetime | None) -> Claim:
    """Renew an abandoned claim's lease for a retry of its request, keeping what it stored: the
    first owner may have published before it vanished, and its answer is the one that stands."""
    row = await (await conn.execute(
        "UPDATE idempotency_records SET lease_until = now() + %s"
        " WHERE scope = %s AND key = %s AND state = 'in_flight' AND lease_until < now()"
        "   AND fingerprint = %s"
        " RETURNING response_status, response_headers, response_body, received_at",
        (LEASE, scope, key, fingerprint),
    )).fetchone()
    if row is None:  # another retry took it over, or it was completed or released meanwhile
        return await claim(conn, scope, key, fingerprint, answer, received_at)
    if row["response_status"] is None:  # a claim that stores its answer only when it completes
        return _OWNED
    return Claim(ClaimOutcome.OWNED, _stored_response(row), row["received_at"])


@dataclass(frozen=True)
class ClaimRequest:
    scope: str
    key: str
    fingerprint: bytes
    # The response the request gives once its action succeeded, and when the request was received
    # (see ``claim``).
    answer: StoredResponse
    received_at: datetime


async def claim_many(conn: Connection, requests: Sequence[ClaimRequest]) -> list[Claim]:
    """``claim`` for each request, in order, as if they had come one after the other.

    Fresh keys, the common case, take one statement for the whole batch; keys that already have a
    record take one more to classify them all. The rare takeover of an expired record or of a claim
    whose lease ran out goes through ``claim``, whose conditional statements arbitrate it."""
    # The first of several requests with one key in a batch is the one that may own it; the others
    # then see it in flight (or reused with another body), as they would have one after the other.
    first: dict[tuple[str, str], int] = {}
    for index, request in enumerate(requests):
        first.setdefault((request.scope, request.key), index)
    fresh = [requests[index] for index in first.values()]
    inserted = await (await conn.execute(
        "INSERT INTO idempotency_records (scope, key, fingerprint, state, lease_until,"
        "   response_status, response_headers, response_body, received_at)"
        " SELECT scope, key, decode(fingerprint, 'hex'), 'in_flight', now() + %s, status, headers,"
        "   decode(body, 'hex'), received_at"
        " FROM jsonb_to_recordset(%s::jsonb) AS batch(scope text, key text, fingerprint text,"
        "   status int, headers jsonb, body text, received_at timestamptz)"
        # One order for every batch on every replica: two batches that share keys then wait for
        # each other's inserts in the same order and cannot deadlock.
        " ORDER BY scope, key"
        " ON CONFLICT (scope, key) DO NOTHING RETURNING scope, key",
        (LEASE, _json([{"scope": r.scope, "key": r.key, "fingerprint": r.fingerprint.hex(),
                        "status": r.answer.status, "headers": r.answer.headers, "body": r.answer.body.hex(),
                        "received_at": r.received_at}
                       for r in fresh])),
    )).fetchall()
    owned = {(row["scope"], row["key"]) for row in inserted}
    claims: dict[int, Claim] = {first[scope_key]: _OWNED for scope_key in owned}
    taken = [index for index in range(len(requests)) if index not in claims]
    if taken:
        existing = await _records(conn, [requests[index] for index in taken])
        for index in taken:
            request = requests[index]
            row = existing.get((request.scope, request.key))
            if row is None or row["expired"] or _abandoned(row, request.fingerprint):
                # Released since, or up for takeover: the single-key statements decide.
                claims[index] = await claim(conn, request.scope, request.key, request.fingerprint,
                                            request.answer, request.received_at)
            else:
                claims[index] = _classified(row, request.fingerprint)
    return [claims[index] for index in range(len(requests))]


async def _records(conn: Connection,
                   requests: Sequence[ClaimRequest]) -> dict[tuple[str, str], dict[str, Any]]:
    by_scope: dict[str, list[str]] = {}
    for request in requests:
        by_scope.setdefault(request.scope, []).append(request.key)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for scope, keys in by_scope.items():
        rows = await (await conn.execute(
            "SELECT scope, key, fingerprint, state, response_status, response_headers, response_body,"
            "  created_at < now() - %s AS expired, lease_until < now() AS lease_over"
            " FROM idempotency_records WHERE scope = %s AND key = ANY(%s::text[])",
            (RETENTION, scope, keys), prepare=False,  # see _PLANNED_EACH_TIME
        )).fetchall()
        found.update({(row["scope"], row["key"]): row for row in rows})
    return found


def _classified(row: dict[str, Any], fingerprint: bytes) -> Claim:
    if bytes(row["fingerprint"]) != fingerprint:
        return Claim(ClaimOutcome.MISMATCH)
    if row["state"] == RecordState.IN_FLIGHT:
        return Claim(ClaimOutcome.IN_FLIGHT)
    return Claim(ClaimOutcome.REPLAY, _stored_response(row))


def _stored_response(row: dict[str, Any]) -> StoredResponse:
    return StoredResponse(row["response_status"], row["response_headers"], bytes(row["response_body"]))


async def complete_claimed(conn: Connection, claims: Sequence[tuple[str, str]]) -> None:
    """``complete`` for each ``(scope, key)`` claimed with its answer (``claim_many``): one
    statement per scope, usually one in all."""
    by_scope: dict[str, list[str]] = {}
    for scope, key in claims:
        by_scope.setdefault(scope, []).append(key)
    for scope, keys in by_scope.items():
        await conn.execute(
            "UPDATE idempotency_records SET state = 'completed'"
            " WHERE scope = %s AND key = ANY(%s::text[]) AND state = 'in_flight'",
            (scope, keys), prepare=False,  # see _PLANNED_EACH_TIME
        )


# _PLANNED_EACH_TIME: statements that find a batch's records by "scope = ... AND key = ANY(...)".
# psycopg prepares a statement after a few runs, and PostgreSQL then keeps a generic plan; one made
# while the table was small or not yet analysed may use the primary key for the scope alone and go
# through all of a project's records, once per batch, ever more of them. Planned with the keys at
# hand, the primary key is used for both columns.


def _json(value: object) -> str:
    """A batch as one JSON parameter: orjson writes it in C, where psycopg would adapt arrays
    element by element in Python. Bytes travel as hex; keys and scopes hold no NUL (they are
    visible ASCII and ids), which jsonb could not carry."""
    return orjson.dumps(value).decode()


async def complete(conn: Connection, scope: str, key: str, response: StoredResponse) -> None:
    await conn.execute(
        "UPDATE idempotency_records SET state = 'completed', response_status = %s, response_headers = %s,"
        " response_body = %s WHERE scope = %s AND key = %s",
        (response.status, Jsonb(response.headers), response.body, scope, key),
    )


async def release(conn: Connection, scope: str, key: str) -> None:
    """Forget an in-flight claim whose request failed, so the client's retry can succeed."""
    await conn.execute(
        "DELETE FROM idempotency_records WHERE scope = %s AND key = %s AND state = 'in_flight'", (scope, key)
    )


async def lapse(conn: Connection, scope: str, key: str) -> None:
    """End an in-flight claim's lease now, keeping what it stored, so that the client's retry takes
    it over at once: for a claim taken over whose stored answer may already have been given."""
    await conn.execute(
        "UPDATE idempotency_records SET lease_until = now()"
        " WHERE scope = %s AND key = %s AND state = 'in_flight'", (scope, key)
    )


async def purge_expired(conn: Connection) -> int:
    cursor = await conn.execute("DELETE FROM idempotency_records WHERE created_at < now() - %s", (RETENTION,))
    return cursor.rowcount
