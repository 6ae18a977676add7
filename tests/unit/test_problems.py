"""The problem middleware: a database away for a moment is a 503 to retry, a bug is a 500; both
problem+json, neither a stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import psycopg
import psycopg_pool
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from api_gateway.problems import CONTENT_TYPE, problem_middleware
from store.errors import translate


@pytest.fixture
async def raising() -> AsyncIterator[Callable[[Exception], str]]:
    """Serve a route that raises the exception it is given; returns the route's URL."""
    app = web.Application(middlewares=[problem_middleware])
    failures: dict[str, Exception] = {}

    async def fail(request: web.Request) -> web.Response:
        raise failures[request.match_info["name"]]

    app.router.add_post("/fail/{name}", fail)
    server = TestServer(app)
    await server.start_server()

    def route(exc: Exception) -> str:
        name = f"e{len(failures)}"
        failures[name] = exc
        return str(server.make_url(f"/fail/{name}"))

    yield route
    await server.close()


@pytest.mark.parametrize("exc", [
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
], ids=lambda exc: type(exc).__name__)
async def test_a_database_away_for_a_moment_is_a_503_to_retry_with_the_same_key(
        raising: Callable[[Exception], str], exc: psycopg.Error) -> None:
    async with aiohttp.ClientSession() as http, http.post(raising(translate(exc))) as response:
        assert response.status == 503
        assert response.content_type == CONTENT_TYPE
        assert int(response.headers["Retry-After"]) > 0
        problem = await response.json(content_type=None)
    assert problem["type"].endswith("/database-unavailable")
    assert "database is unavailable" in problem["detail"] and "same Idempotency-Key" in problem["detail"]
    assert f"({type(exc).__name__})" in problem["detail"]
    assert str(exc) not in problem["detail"]  # the database's own words stay in the log


@pytest.mark.parametrize("exc", [
    translate(psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")),
    translate(psycopg.errors.SyntaxError("syntax error at or near \"SELEC\"")),
    ValueError("a bug"),
], ids=lambda exc: type(exc).__name__)
async def test_a_failure_that_retrying_would_not_mend_is_a_500(
        raising: Callable[[Exception], str], exc: Exception) -> None:
    async with aiohttp.ClientSession() as http, http.post(raising(exc)) as response:
        assert response.status == 500
        assert response.content_type == CONTENT_TYPE
        assert "Retry-After" not in response.headers
        assert (await response.json(content_type=None))["type"].endswith("/internal-error")
