"""Console page of a project's repair callback: set or replace its URL (checked as the API checks
it), the signing secret shown once after a set or a rotation, the rotation's overlap, and a test
callback with the receiver's status and latency."""

from __future__ import annotations

from aiohttp import web

from api_gateway.console.forms import act, field_messages, parsed, read_form, text
from api_gateway.console.pages import render
from api_gateway.idempotency import STORED_BODY
from api_gateway.operator_api.bodies import parse_callback
from api_gateway.operator_api.callback import (
    CallbackTest,
    overlap_hours,
    rotate_signing_secret,
    set_callback,
    test_callback,
)
from api_gateway.operator_api.common import visible_project
from api_gateway.problems import Problem
from api_gateway.state import POOL
from store import callbacks
from store.db import Connection


async def _page(request: web.Request, conn: Connection, *, status: int = 200, secret: str | None = None,
                redacted: bool = False, errors: Problem | None = None,
                url: str | None = None, tested: CallbackTest | None = None) -> web.Response:
    project = await visible_project(request, conn)
    secrets = await callbacks.active_secrets(conn, project.id)
    return render(request, "callback.html", status=status, project=project, secrets=secrets, secret=secret,
                  redacted=redacted, errors=errors, fields=field_messages(errors) if errors else {},
                  url=project.repair_callback_url if url is None else url, overlap_hours=overlap_hours(),
                  tested=tested)


async def show(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        return await _page(request, conn)


async def _refused_page(request: web.Request, problem: Problem, url: str | None = None) -> web.Response:
    async with request.app[POOL].connection() as conn:
        return await _page(request, conn, status=problem.status, errors=problem, url=url)


async def _with_secret(request: web.Request, conn: Connection, secret: str) -> web.Response:
    """The page with the new secret, shown on this answer only (a reload gets it redacted)."""
    response = await _page(request, conn, secret=secret)
    response[STORED_BODY] = (await _page(request, conn, redacted=True)).body
    return response


async def set_url(request: web.Request) -> web.Response:
    form = await read_form(request)
    url = text(form, "url")

    async def action(conn: Connection) -> web.Response:
        return await _with_secret(request, conn, await set_callback(request, conn, parsed(parse_callback,
                                                                                          {"url": url})))

    return await act(request, action, lambda problem: _refused_page(request, problem, url))


async def rotate(request: web.Request) -> web.Response:
    await read_form(request)

    async def action(conn: Connection) -> web.Response:
        _, secret = await rotate_signing_secret(request, conn)
        return await _with_secret(request, conn, secret)

    return await act(request, action, lambda problem: _refused_page(request, problem))


async def send_test(request: web.Request) -> web.Response:
    await read_form(request)

    async def action(conn: Connection) -> web.Response:
        return await _page(request, conn, tested=await test_callback(request, conn))

    return await act(request, action, lambda problem: _refused_page(request, problem))
