"""``/api/v1/projects``: create, list, read, update — and the rules for going live."""

from __future__ import annotations

from aiohttp import web

from api_gateway.http_input import parsed_body
from api_gateway.idempotency import run_idempotent
from api_gateway.operator_api.bodies import parse_project_create, parse_project_update
from api_gateway.operator_api.common import (
    actor,
    created_cursor,
    created_cursor_of,
    operator_of,
    record_audit,
    visible_project,
)
from api_gateway.problems import Problem
from api_gateway.responses import json_response, limit_param, page
from api_gateway.state import POOL, SETTINGS
from sendpromptly.control_plane import create_project, project_document
from sendpromptly.targets import TargetError, check_url
from store import destinations, projects
from store.db import Connection
from store.projects import Project


async def create(request: web.Request) -> web.Response:
    operator = operator_of(request)
    body = await parsed_body(request, parse_project_create)

    async def action(conn: Connection) -> web.Response:
        if body.values.get("mode") == "live":
            raise Problem(409, "live-prerequisites", "Cannot create a live project",
                          "Create the project in test mode, set its callback, key and alert destination, "
                          "then switch it to live.")
        project = await create_project(conn, actor(request), operator.id, body.values)
        return json_response(201, project_document(project))

    return await run_idempotent(request, operator.id, action)


async def list_(request: web.Request) -> web.Response:
    operator = operator_of(request)
    limit = limit_param(request)
    before = created_cursor(request, "prj")
    async with request.app[POOL].connection() as conn:
        found = await projects.list_projects(
            conn, operator_id=None if operator.is_admin else operator.id, before=before, limit=limit + 1)
    return json_response(200, page(found, limit, project_document, created_cursor_of))


async def read(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
    return json_response(200, project_document(project))


async def update(request: web.Request) -> web.Response:
    body = await parsed_body(request, parse_project_update)

    async def action(conn: Connection) -> web.Response:
        project = await visible_project(request, conn)
        changes = {k: v for k, v in body.values.items() if getattr(project, k) != v}
        if changes.get("mode") == "live":
            await require_live_prerequisites(request, conn, project)
        updated = await projects.update_project(conn, project.id, changes)
        if changes:
            action_name = "project.mode_switched" if set(changes) == {"mode"} else "project.updated"
            await record_audit(conn, request, project_id=project.id, action=action_name, target=project.id,
                               data={"changes": {k: {"from": getattr(project, k), "to": v}
                                                 for k, v in changes.items()}})
        return json_response(200, project_document(updated))

    return await run_idempotent(request, operator_of(request).id, action)


async def require_live_prerequisites(request: web.Request, conn: Connection, project: Project) -> None:
    """Live mode needs a reachable repair path and someone to tell: refuse with every gap named."""
    missing: list[tuple[str, str]] = []
    if project.repair_callback_url is None:
        missing.append(("repair_callback_url", "set a repair callback URL first (PUT .../repair-callback)"))
    else:
        try:
            await check_url(project.repair_callback_url, require_https=True,
                            allow_private=request.app[SETTINGS].allow_private_targets)
        except TargetError as exc:
            missing.append(("repair_callback_url", f"in live mode the callback URL {exc}"))
    if await projects.count_live_keys(conn, project.id) == 0:
        missing.append(("api_keys", "create an API key first (POST .../keys)"))
    if not await destinations.list_destinations(conn, project.id):
        missing.append(("alert_destinations", "add an alert destination first (POST .../alert-destinations)"))
    if missing:
        raise Problem(409, "live-prerequisites", "Not ready for live mode",
                      "The project cannot switch to live yet: " + "; ".join(m for _, m in missing) + ".",
                      errors=missing)
