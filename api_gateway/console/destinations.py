"""Console page of a project's alert destinations: add one of a kind the channels know (an email
address, a Slack webhook), send a test alert, remove one; each shows its last delivery error."""

from __future__ import annotations

from aiohttp import web

from api_gateway.console.forms import act, field_messages, parsed, read_form, see_other, text
from api_gateway.console.pages import render
from api_gateway.operator_api.bodies import parse_destination
from api_gateway.operator_api.common import visible_project
from api_gateway.operator_api.destinations import add_destination, remove_destination, test_destination
from api_gateway.problems import Problem
from api_gateway.state import POOL
from channels import KINDS
from store import destinations
from store.db import Connection


async def _page(request: web.Request, conn: Connection, *, status: int = 200, errors: Problem | None = None,
                values: dict[str, str] | None = None, tested: str | None = None) -> web.Response:
    project = await visible_project(request, conn)
    found = await destinations.list_destinations(conn, project.id)
    return render(request, "destinations.html", status=status, project=project, destinations=found,
                  errors=errors, fields=field_messages(errors) if errors else {}, values=values or {},
                  tested=tested, kinds=KINDS.values())


async def show(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        return await _page(request, conn)


async def _refused_page(request: web.Request, problem: Problem, values: dict[str, str] | None = None
                        ) -> web.Response:
    async with request.app[POOL].connection() as conn:
        return await _page(request, conn, status=problem.status, errors=problem, values=values)


async def add(request: web.Request) -> web.Response:
    form = await read_form(request)
    values = {"type": text(form, "type"), "target": text(form, "target")}

    async def action(conn: Connection) -> web.Response:
        await add_destination(request, conn, parsed(parse_destination, values))
        return see_other(f"/projects/{request.match_info['project_id']}/alerts")

    return await act(request, action, lambda problem: _refused_page(request, problem, values))


async def send_test(request: web.Request) -> web.Response:
    await read_form(request)

    async def action(conn: Connection) -> web.Response:
        tested, error = await test_destination(request, conn)
        if error is None:
            return await _page(request, conn, tested=f"A test alert went to {tested.target}.")
        kind = "refused it for good" if error.permanent else "failed for now"
        # A 502, like the API's: the form's key is given back, so sending again sends again.
        return await _page(request, conn, status=502,
                           tested=f"The test alert to {tested.target} was not sent: the {tested.type} "
                                  f"channel {kind} ({error.message}).")

    return await act(request, action, lambda problem: _refused_page(request, problem))


async def remove(request: web.Request) -> web.Response:
    await read_form(request)

    async def action(conn: Connection) -> web.Response:
        removed = await remove_destination(request, conn)
        return see_other(f"/projects/{removed.project_id}/alerts")

    return await act(request, action, lambda problem: _refused_page(request, problem))
