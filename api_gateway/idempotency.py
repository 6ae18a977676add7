"""Idempotency for every POST, PUT, PATCH and DELETE, ingest and operator alike.

``run_idempotent`` claims the request's ``Idempotency-Key`` in its scope, runs the action, and stores
the response in the same transaction as the action's own writes. A repeat of the same request gets
the stored response with ``Idempotent-Replayed: true``; the same key with another body gets 422;
a repeat while the first is still running gets 409. A 5xx releases the key so a retry can succeed.

``run_idempotent_publish`` does the same for ingest, whose action is a Kafka write: see there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiohttp import web
from prometheus_client import Counter

from api_gateway.http_input import idempotency_key
from api_gateway.idempotency_batcher import IdempotencyBatcher
from api_gateway.problems import Problem
from api_gateway.state import POOL
from store import idempotency as records
from store.db import Connection, Pool
from store.idempotency import Claim, ClaimOutcome, StoredResponse

REPLAYS = Counter("sendpromptly_idempotent_replays_total", "Requests answered from an idempotency record",
                  ["scope_kind"])
CONFLICTS = Counter("sendpromptly_idempotency_conflicts_total", "Idempotency-Key reuse refused",
                    ["scope_kind", "reason"])

# The ingest path's claims and completions, batched across concurrent requests (app.py starts it).
BATCHER = web.AppKey("idempotency_batcher", IdempotencyBatcher)

# Headers worth replaying; Date and the like belong to the new answer.
_KEPT_HEADERS = ("Content-Type", "Location", "Retry-After")
# A response may carry a secret shown exactly once (an API key, a signing secret). The action puts
# the body to store under this key instead; the replay then shows the secret redacted.
STORED_BODY = "sendpromptly.stored_body"


def with_secret_redacted(response: web.Response, stored_doc: dict[str, object]) -> web.Response:
    """Mark ``response`` so that its stored copy (the replay) is ``stored_doc``, without the secret."""
    response[STORED_BODY] = orjson.dumps(stored_doc, default=str)
    return response

Action = Callable[[Connection], Awaitable[web.Response]]


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests "the same" for one key: method, path and the exact body bytes."""
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).digest()


async def run_idempotent(request: web.Request, scope: str, action: Action, *,
                         store_refusals: bool = True) -> web.Response:
    """For actions that write to the database: their writes and the stored response commit in one
    transaction, so a crash can never leave the action done but the key unanswered. Without
    ``store_refusals`` (the console, which shows a refusal beside the form's fields and gives the
    form a new key) a client error the action raises gives the key back and is raised."""
    pool = request.app[POOL]
    key, claimed = await _claim(request, scope, _claim_on_own_connection(pool, scope))
    if claimed.outcome is ClaimOutcome.REPLAY:
        return _replayed(claimed)
    try:
        async with pool.connection() as conn:
            async with conn.transaction():
                response = await _answer(action, conn, store_refusals)
                if response.status < 500:
                    await records.complete(conn, scope, key, _stored(response))
                    return response
            await records.release(conn, scope, key)
            return response
    except BaseException:
        await _release(pool, scope, key)
        raise


async def run_idempotent_unheld(request: web.Request, scope: str,
                                work: Callable[[], Awaitable[web.Response]]) -> web.Response:
    """For requests whose work keeps keys of its own and waits on Kafka (batch ingest): the
    request's key is claimed, ``work()`` runs holding no connection, and its answer is stored
    (a 5xx, or an exception, gives the key back for the retry)."""
    pool = request.app[POOL]
    key, claimed = await _claim(request, scope, _claim_on_own_connection(pool, scope))
    if claimed.outcome is ClaimOutcome.REPLAY:
        return _replayed(claimed)
    try:
        response = await work()
    except BaseException:
        await _release(pool, scope, key)
        raise
    if response.status >= 500:
        await _release(pool, scope, key)
        return response
    async with pool.connection() as conn:
        await records.complete(conn, scope, key, _stored(response))
    return response


def _claim_on_own_connection(pool: Pool, scope: str) -> Callable[[str, bytes], Awaitable[Claim]]:
    async def claim(key: str, request_print: bytes) -> Claim:
        async with pool.connection() as conn:
            return await records.claim(conn, scope, key, request_print)
    return claim


async def give_back(pool: Pool, scope: str, key: str, *, taken_over: bool) -> None:
    """Let the client's retry have the key of a request whose publish failed. A claim taken over
    keeps its stored answer (the first owner may have given it): only its lease ends."""
    if not taken_over:
        await _release(pool, scope, key)
        return
    async with pool.connection() as conn:
        await records.lapse(conn, scope, key)


@dataclass(frozen=True)
class Accepted:
    """An ingest request's answer (its 202) and the Kafka write that must succeed before it is
    given, both made for the moment the request was received."""

    answer: web.Response
    publish: Callable[[], Awaitable[None]]


async def run_idempotent_publish(request: web.Request, scope: str,
                                 accepted_at: Callable[[datetime], Accepted], *,
                                 request_print: bytes | None = None) -> web.Response:
    """For actions whose effect is a Kafka write (ingest): ``accepted_at(received_at)`` makes the
    answer and the publish, and the answer is given once the publish returned. No database
    transaction and no connection is held while waiting for the broker. The claim stores the
    answer and ``received_at``, the completion marks it final, each sharing one statement with the
    concurrent requests' (``BATCHER``). If the publish fails, the key is given back for the retry.

    Once Kafka has the signal the answer stands: a completion that fails is retried in the
    background. If it never lands (the process died, the database stayed away), the claim's lease
    runs out and a retry of the request takes the claim over: it publishes the signal again for the
    first ``received_at`` and gives the first answer (at-least-once, which the agents'
    (project_id, idempotency_key) dedupe absorbs; the deadline is the same either way).

    ``request_print``: what makes two requests the same, when not their exact bytes (a signal
    is the same in a single request and as an item of a batch)."""
    batcher = request.app[BATCHER]
    received_at = datetime.now(UTC)
    accepted = accepted_at(received_at)

    async def claim(key: str, request_print: bytes) -> Claim:
        return await batcher.claim(scope, key, request_print, _stored(accepted.answer), received_at)

    key, claimed = await _claim(request, scope, claim, request_print)
    if claimed.outcome is ClaimOutcome.REPLAY:
        return _replayed(claimed)
    if claimed.taken_over:
        assert claimed.response is not None  # noqa: S101 (a taken-over claim carries the dead owner's stored response)
        # From an owner that vanished after storing its answer, perhaps after Kafka's ack: publish
        # that very signal again, and give that answer. (A claim stored before migration 0007 has
        # no received_at: its answer still stands, the signal is stamped now.)
        first = accepted_at(claimed.received_at or received_at)
        accepted = Accepted(_restored(claimed.response), first.publish)
    try:
        await accepted.publish()
    except BaseException:
        await give_back(request.app[POOL], scope, key, taken_over=claimed.taken_over)
        raise
    await batcher.complete(scope, key)
    return accepted.answer


async def _claim(request: web.Request, scope: str, claim_key: Callable[[str, bytes], Awaitable[Claim]],
                 request_print: bytes | None = None) -> tuple[str, Claim]:
    """Claim the request's key with ``claim_key``; returns it, and the claim: owned, or a replay.
    Refuses a reused key (422) and one still in flight (409)."""
    key = idempotency_key(request)
    scope_kind = scope.split("_", 1)[0]
    if request_print is None:
        request_print = fingerprint(request.method, request.path, await request.read())
    claim = await claim_key(key, request_print)
    if claim.outcome is ClaimOutcome.REPLAY:
        REPLAYS.labels(scope_kind).inc()
    if claim.outcome is ClaimOutcome.MISMATCH:
        CONFLICTS.labels(scope_kind, "mismatch").inc()
        raise Problem(
            422, "idempotency-key-reused", "Idempotency-Key reused",
            "This Idempotency-Key was used with a different request; use a new key for a new operation.",
        )
    if claim.outcome is ClaimOutcome.IN_FLIGHT:
        CONFLICTS.labels(scope_kind, "in_flight").inc()
        raise Problem(
            409, "idempotency-key-in-flight", "Request in progress",
            "A request with this Idempotency-Key is still being processed; retry in a moment.",
            headers={"Retry-After": "1"},
        )
    return key, claim


async def _release(pool: Pool, scope: str, key: str) -> None:
    async with pool.connection() as conn:
        await records.release(conn, scope, key)


async def _answer(action: Action, conn: Connection, store_refusals: bool) -> web.Response:
    """The action's response; a client error it raises is an answer too, and is stored as one,
    after the action's own writes on ``conn`` are rolled back."""
    try:
        async with conn.transaction():
            return await action(conn)
    except Problem as problem:
        if problem.status >= 500 or not store_refusals:
            raise
        return problem.response()


def _stored(response: web.Response) -> StoredResponse:
    headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
    body = response.get(STORED_BODY) or (response.body if isinstance(response.body, bytes) else b"")
    return StoredResponse(response.status, headers, body)


def _replayed(claim: Claim) -> web.Response:
    assert claim.response is not None  # noqa: S101 (a replay carries its stored response)
    response = _restored(claim.response)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _restored(stored: StoredResponse) -> web.Response:
    headers = dict(stored.headers)
    content_type = headers.pop("Content-Type", "application/json").split(";")[0]
    return web.Response(status=stored.status, body=stored.body, headers=headers, content_type=content_type)
