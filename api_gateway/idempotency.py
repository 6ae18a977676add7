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
from psycopg import AsyncConnection

from api_gateway.http_input import idempotency_key
from api_gateway.problems import Problem
from api_gateway.state import POOL
from store import idempotency as records
from store.idempotency import ClaimOutcome, StoredResponse

REPLAYS = Counter("sendpromptly_idempotent_replays_total", "Requests answered from an idempotency record", ["scope_kind"])
CONFLICTS = Counter("sendpromptly_idempotency_conflicts_total", "Idempotency-Key reuse refused", ["scope_kind", "reason"])

# Headers worth replaying; Date and the like belong to the new answer.
_KEPT_HEADERS = ("Content-Type", "Location", "Retry-After")
# A response may carry a secret shown exactly once (an API key, a signing secret). The action puts
# the body to store under this key instead; the replay then shows the secret redacted.
STORED_BODY = "sendpromptly.stored_body"


def with_secret_redacted(response: web.Response, stored_doc: dict[str, object]) -> web.Response:
    """Mark ``response`` so that its stored copy (the replay) is ``stored_doc``, without the secret."""
    response[STORED_BODY] = orjson.dumps(stored_doc, default=str)
    return response

Action = Callable[[AsyncConnection], Awaitable[web.Response]]


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests "the same" for one key: method, path and the exact body bytes."""
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).digest()


async def run_idempotent(request: web.Request, scope: str, action: Action) -> web.Response:
    key = idempotency_key(request)
    scope_kind = scope.split("_", 1)[0]
    pool = request.app[POOL]
    request_print = fingerprint(request.method, request.path, await request.read())
    async with pool.connection() as conn:
        claim = await records.claim(conn, scope, key, request_print)
    if claim.outcome is ClaimOutcome.REPLAY:
        assert claim.response is not None
        REPLAYS.labels(scope_kind).inc()
        return _replayed(claim.response)
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
        async with pool.connection() as conn:
            await records.release(conn, scope, key)
        raise


async def _answer(action: Action, conn: AsyncConnection) -> web.Response:
    """The action's response; a client error it raises is an answer too, and is stored as one,
    but only after the action's writes are rolled back."""
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
