"""Idempotency for every POST, PUT, PATCH and DELETE (DESIGN.md §5), ingest and operator alike.

``run_idempotent`` claims the request's ``Idempotency-Key`` in its scope, runs the action, and stores
the response in the same transaction as the action's own writes. A repeat of the same request gets
the stored response with ``Idempotent-Replayed: true``; the same key with another body gets 422;
a repeat while the first is still running gets 409. A 5xx releases the key so a retry can succeed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

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


async def run_idempotent(request: web.Request, scope: str, action: Action) -> web.Response:
    """For actions that write to the database: their writes and the stored response commit in one
    transaction, so a crash can never leave the action done but the key unanswered."""
    pool = request.app[POOL]

    async def claim(key: str, request_print: bytes) -> Claim:
        async with pool.connection() as conn:
            return await records.claim(conn, scope, key, request_print)

    key, replay = await _claim(request, scope, claim)
    if replay is not None:
        return replay
    try:
        async with pool.connection() as conn:
            async with conn.transaction():
                response = await _answer(action, conn)
                if response.status < 500:
                    await records.complete(conn, scope, key, _stored(response))
                    return response
            await records.release(conn, scope, key)
            return response
    except BaseException:
        await _release(pool, scope, key)
        raise


async def run_idempotent_publish(request: web.Request, scope: str, answer: web.Response,
                                 publish: Callable[[], Awaitable[None]]) -> web.Response:
    """For actions whose effect is a Kafka write (ingest), answered with ``answer`` once ``publish``
    returned: no database transaction and no connection held while waiting for the broker. The
    claim stores the answer and the completion marks it final, each sharing one statement with the
    concurrent requests' (``BATCHER``). If ``publish`` fails, the key is released for the retry.
    If the process dies between the broker's ack and the completion, the claim's lease runs out
    and a retry publishes again: at-least-once, which the agents' (project_id, idempotency_key)
    dedupe absorbs."""
    batcher = request.app[BATCHER]
    stored = _stored(answer)

    async def claim(key: str, request_print: bytes) -> Claim:
        return await batcher.claim(scope, key, request_print, stored)

    key, replay = await _claim(request, scope, claim)
    if replay is not None:
        return replay
    try:
        await publish()
    except BaseException:
        await _release(request.app[POOL], scope, key)
        raise
    await batcher.complete(scope, key)
    return answer


async def _claim(request: web.Request, scope: str,
                 claim_key: Callable[[str, bytes], Awaitable[Claim]]) -> tuple[str, web.Response | None]:
    """Claim the request's key with ``claim_key``; returns it, and the answer to give instead when
    it is a replay. Refuses a reused key (422) and one still in flight (409)."""
    key = idempotency_key(request)
    scope_kind = scope.split("_", 1)[0]
    request_print = fingerprint(request.method, request.path, await request.read())
    claim = await claim_key(key, request_print)
    if claim.outcome is ClaimOutcome.REPLAY:
        assert claim.response is not None
        REPLAYS.labels(scope_kind).inc()
        return key, _replayed(claim.response)
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
    return key, None


async def _release(pool: Pool, scope: str, key: str) -> None:
    async with pool.connection() as conn:
        await records.release(conn, scope, key)


async def _answer(action: Action, conn: Connection) -> web.Response:
    """The action's response; a client error it raises is an answer too, and is stored as one,
    after the action's own writes on ``conn`` are rolled back."""
    try:
        async with conn.transaction():
            return await action(conn)
    except Problem as problem:
        if problem.status >= 500:
            raise
        return problem.response()


def _stored(response: web.Response) -> StoredResponse:
    headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
    body = response.get(STORED_BODY) or (response.body if isinstance(response.body, bytes) else b"")
    return StoredResponse(response.status, headers, body)


def _replayed(stored: StoredResponse) -> web.Response:
    headers = {**stored.headers, "Idempotent-Replayed": "true"}
    content_type = headers.pop("Content-Type", "application/json").split(";")[0]
    return web.Response(status=stored.status, body=stored.body, headers=headers, content_type=content_type)
