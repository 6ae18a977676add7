"""Authentication: one middleware that attaches the caller's project to ingest requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter

from api_gateway.problems import Problem
from api_gateway.state import API_KEY_CACHE, KEY_USAGE, OPERATOR, OPERATOR_CACHE, PROJECT
from common import operator_tokens
from common.apikeys import hash_api_key, looks_like_api_key
from common.observability import bind_log_context
from store.operators import Operator

# Routes whose name starts with this are called with an API key (sk_...).
INGEST_ROUTE_PREFIX = "ingest."
# ... and these with an operator's personal token (op_...).
OPERATOR_ROUTE_PREFIX = "operator."

AUTH_FAILURES = Counter("sendpromptly_auth_failures_total", "Refused credentials", ["kind", "reason"])


def _unauthorized(reason: str, detail: str, kind: str = "api_key") -> Problem:
    AUTH_FAILURES.labels(kind, reason).inc()
    return Problem(
        401, "unauthorized", "Unauthorized", detail,
        headers={"WWW-Authenticate": 'Bearer realm="sendpromptly"'},
    )


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route_name = request.match_info.route.name or ""
    if route_name.startswith(INGEST_ROUTE_PREFIX):
        token = bearer_token(request)
        if token is None:
            raise _unauthorized("missing", "Send your project's API key as 'Authorization: Bearer sk_...'.")
        if not looks_like_api_key(token):
            raise _unauthorized("malformed", "The bearer token is not an API key (sk_...).")
        key_hash = hash_api_key(token)
        project = await request.app[API_KEY_CACHE].get(key_hash)
        if project is None:
            raise _unauthorized("unknown",
                                "This API key is unknown or revoked; create a new one in the console.")
        request.app[KEY_USAGE].note(key_hash)
        request[PROJECT] = project
        bind_log_context(project_id=project.id)
    elif route_name.startswith(OPERATOR_ROUTE_PREFIX):
        request[OPERATOR] = await _operator(request)
    return await handler(request)


async def _operator(request: web.Request) -> Operator:
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing", "Send your operator token as 'Authorization: Bearer op_...'.",
                            "operator")
    if not operator_tokens.looks_like_token(token):
        raise _unauthorized("malformed", "The bearer token is not an operator token (op_...).", "operator")
    operator = await request.app[OPERATOR_CACHE].get(operator_tokens.hash_token(token))
    if operator is None:
        raise _unauthorized("unknown",
                            "This operator token is unknown or revoked; ask an admin for a new one.",
                            "operator")
    return operator
