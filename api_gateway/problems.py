"""RFC 9457 problem details: every error the API answers, from one place.

Handlers raise ``Problem``; the middleware turns it (and any aiohttp HTTP error, a database away
for a moment, and any bug) into ``application/problem+json``. A client never sees an HTML page or
a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from store.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://sendpromptly.dev/problems/"
CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, slug: str, title: str, detail: str, *,
                 errors: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug, "title": self.title, "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            doc["errors"] = [{"field": f, "message": m} for f, m in self.errors]
        return doc

    def response(self) -> web.Response:
        return web.Response(
            status=self.status, body=orjson.dumps(self.to_dict()), content_type=CONTENT_TYPE,
            headers=self.headers,
        )


def invalid_fields(errors: list[tuple[str, str]]) -> Problem:
    named = ", ".join(sorted({field or "(body)" for field, _ in errors}))
    return Problem(422, "invalid-fields", "Invalid fields", f"These fields are invalid: {named}.",
                   errors=errors)


# How long a client should wait before retrying when Kafka did not take a write.
KAFKA_RETRY_AFTER_SECONDS = 5


def kafka_unavailable(what: str, cause: Exception) -> Problem:
    """503 for a write Kafka did not acknowledge: ``what`` did not happen, and the client retries
    with the same Idempotency-Key (which was given back for it)."""
    return Problem(
        503, "kafka-unavailable", "Service Unavailable",
        f"{what} ({cause}). Retry with the same Idempotency-Key.",
        headers={"Retry-After": str(KAFKA_RETRY_AFTER_SECONDS)},
    )


# How long a client should wait before retrying when the database did not answer: a restart or a
# failover takes seconds, and the pool replaces its dropped connections meanwhile.
DATABASE_RETRY_AFTER_SECONDS = 2


def database_unavailable(cause: DatabaseUnavailable) -> Problem:
    """503 for a request the database could not serve for a passing reason (a restart, a dropped
    connection): the request was not answered, so the client retries it with the same
    Idempotency-Key."""
    return Problem(
        503, "database-unavailable", "Service Unavailable",
        f"The database is unavailable right now ({cause.reason}); "
        "retry with the same Idempotency-Key in a moment.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


# nginx's "client closed request": the client left before the answer, so none is sent; metrics
# count it apart from the 5xx that are our faults.
CLIENT_CLOSED_REQUEST = 499


def client_gone(request: web.Request) -> Problem:
    """The answer to a request whose client closed the connection mid-request (reading its body,
    say): one line in the log, no traceback, and a 499 for the metrics middleware to count."""
    log.info("client closed the connection during %s %s; nothing was answered", request.method, request.path)
    return Problem(CLIENT_CLOSED_REQUEST, "client-closed-request", "Client Closed Request",
                   "The connection was closed before the answer.")


_STATUS_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return as_problem(request, exc).response()
    except Exception as exc:
        return as_problem(request, exc).response()


def as_problem(request: web.Request, exc: Exception) -> Problem:
    """What an error raised while answering ``request`` tells the client (the console shows the
    same as a page): a Problem as it is, an HTTP error by its status, a database away for a moment
    as 503, and any bug as 500, logged."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, web.HTTPException):
        slug = _STATUS_SLUGS.get(exc.status, "http-error")
        detail = f"{request.method} {request.path}: {exc.reason}."
        if exc.status == 404:
            detail = f"There is no resource at {request.path}."
        elif exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}."
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return Problem(exc.status, slug, exc.reason, detail, headers=headers)
    # A reset while our client's connection is gone is theirs; any other peer's is a fault.
    if isinstance(exc, ConnectionResetError) and request.transport is None:
        return client_gone(request)
    if isinstance(exc, DatabaseUnavailable):
        log.warning("database unavailable in %s %s: %s", request.method, request.path, exc)
        return database_unavailable(exc)
    log.exception("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return Problem(
        500, "internal-error", "Internal Server Error",
        "Something went wrong on our side; the request may be retried with the same Idempotency-Key.",
    )
