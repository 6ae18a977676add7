"""Console page of a project's API keys: create one (shown in full once), list, revoke."""

from __future__ import annotations

from aiohttp import web

from api_gateway.console.forms import act, field_messages, parsed, read_form, see_other, text
from api_gateway.console.pages import render
from api_gateway.idempotency import STORED_BODY
from api_gateway.operator_api.bodies import parse_key_create
from api_gateway.operator_api.common import visible_project
from api_gateway.operator_api.keys import new_key, revoke_key
from api_gateway.problems import Problem
from api_gateway.state import POOL
from store import projects
from store.db import Connection

# A project has a handful of keys; the page lists this many, newest first.
LISTED = 100


async def _page(request: web.Request, conn: Connection, *, status: int = 200, created: str | None = None,
                redacted: bool = False, errors: Problem | None = None, label: str = "") -> web.Response:
    project = await visible_project(request, conn)
    keys = await projects.list_api_keys(conn, project.id, before=None, limit=LISTED)
    return render(request, "keys.html", status=status, project=project, keys=keys, created=created,
                  redacted=redacted, errors=errors, fields=field_messages(errors) if errors else {},
                  label=label)


async def show(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        return await _page(request, conn)


async def create(request: web.Request) -> web.Response:
    form = await read_form(request)
    label = text(form, "label")

    async def action(conn: Connection) -> web.Response:
        _, plaintext = await new_key(request, conn, parsed(parse_key_create, {"label": label}))
        # Shown on this answer only: the stored copy that a repeated post (a reload) gets back says
        # the key was shown once, like the API's redacted replay.
        response = await _page(request, conn, status=201, created=plaintext)
        response[STORED_BODY] = (await _page(request, conn, status=201, redacted=True)).body
        return response

    async def refused(problem: Problem) -> web.Response:
        async with request.app[POOL].connection() as conn:
            return await _page(request, conn, status=problem.status, errors=problem, label=label)

    return await act(request, action, refused)


async def revoke(request: web.Request) -> web.Response:
    await read_form(request)

    async def action(conn: Connection) -> web.Response:
        revoked = await revoke_key(request, conn)
        return see_other(f"/projects/{revoked.project_id}/keys")

    async def refused(problem: Problem) -> web.Response:
        async with request.app[POOL].connection() as conn:
            return await _page(request, conn, status=problem.status, errors=problem)

    return await act(request, action, refused)
