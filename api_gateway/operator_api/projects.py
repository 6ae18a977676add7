"""``/api/v1/projects``: create, list, read, update — and the rules for going live."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api_gateway.control_plane import create_project, project_document
from api_gateway.http_input import parsed_body
from api_gateway.idempotency import run_idempotent
from api_gateway.operator_api.bodies import parse_project_create, parse_project_update
from api_gateway.operator_api.common import (
    actor,
    created_cursor,
    created_cursor_of,
    operator_of,
    project_not_found,
    record_audit,
    visible_project,
)
from api_gateway.problems import Problem
from api_gateway.responses import json_response, list_params, page
from api_gateway.state import POOL, SETTINGS
from channels import KINDS
from common.targets import TargetError, check_url, check_url_syntax
from store import destinations, projects
from store.db import Connection
from store.projects import Project
from topics.fields import Mode


async def create(request: web.Request) -> web.Response:
    body = await parsed_body(request, parse_project_create)

    async def action(conn: Connection) -> web.Response:
        return json_response(201, project_document(await new_project(request, conn, body.values)))

    return await run_idempotent(request, operator_of(request).id, action)


async def new_project(request: web.Request, conn: Connection, values: dict[str, Any]) -> Project:
    """A project of the asking operator's, who becomes its member; always created in test mode."""
    if values.get("mode") == Mode.LIVE:
        raise Problem(409, "live-prerequisites", "Cannot create a live project",
                      "Create the project in test mode, set its callback, key and alert destination, "
                      "then switch it to live.")
    return await create_project(conn, actor(request), operator_of(request).id, values)


async def list_(request: web.Request) -> web.Response:
    operator = operator_of(request)
    limit = list_params(request)
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
        return json_response(200, project_document(await change_project(request, conn, body.values)))

    return await run_idempotent(request, operator_of(request).id, action)


async def change_project(request: web.Request, conn: Connection, values: dict[str, Any]) -> Project:
    """The path's project with ``values`` changed, audited; going live only with its prerequisites."""
    project = await visible_project(request, conn)
    changes = {k: v for k, v in values.items() if getattr(project, k) != v}
    if changes.get("mode") == Mode.LIVE:
        await require_live_prerequisites(request, conn, project.id)
    updated = await projects.update_project(conn, project.id, changes)
    if changes:
        action_name = "project.mode_switched" if set(changes) == {"mode"} else "project.updated"
        await record_audit(conn, request, project_id=project.id, action=action_name, target=project.id,
                           data={"changes": {k: {"from": getattr(project, k), "to": v}
                                             for k, v in changes.items()}})
    return updated


async def require_live_prerequisites(request: web.Request, conn: Connection, project_id: str) -> None:
    """Before switching to live: refuse with every gap named. The project stays locked until the
    switch commits, so a change that would open a gap waits for it (``hold_live_prerequisites``)."""
    project = await projects.lock_project(conn, project_id)
    if project is None:
        raise project_not_found(project_id)
    missing = await live_gaps(request, conn, project, resolve=True)
    if missing:
        raise Problem(409, "live-prerequisites", "Not ready for live mode",
                      "The project cannot switch to live yet: " + "; ".join(m for _, m in missing) + ".",
                      errors=missing)


async def hold_live_prerequisites(request: web.Request, conn: Connection, project_id: str) -> None:
    """After a change to a project's keys, destinations or callback, in its transaction: if the
    project is live, refuse the change (rolled back with this 409) when it leaves a gap, for live
    mode's prerequisites hold for as long as the project is live."""
    project = await projects.lock_project(conn, project_id)
    if project is None:
        raise project_not_found(project_id)
    # The callback's host is not resolved again here: a DNS hiccup must not block revoking a key.
    missing = [] if project.mode != Mode.LIVE else await live_gaps(request, conn, project, resolve=False)
    if missing:
        raise Problem(409, "live-prerequisites", "Live mode needs this",
                      f"Project {project.id} is live, and this change would leave it without what live "
                      "mode needs: " + "; ".join(m for _, m in missing) + ". Make the replacement "
                      "first, or switch the project to test mode first (PATCH /api/v1/projects/"
                      f'{project.id} {{"mode": "{Mode.TEST}"}}).', errors=missing)


async def live_gaps(request: web.Request, conn: Connection, project: Project, *,
                     resolve: bool) -> list[tuple[str, str]]:
    """What live mode needs and the project lacks: an https repair path (its host resolving to
    allowed addresses, with ``resolve``), an API key, and someone to tell (over https, for Slack)."""
    missing: list[tuple[str, str]] = []
    if project.repair_callback_url is None:
        missing.append(("repair_callback_url", "set a repair callback URL first (PUT .../repair-callback)"))
    else:
        try:
            check_url_syntax(project.repair_callback_url, require_https=True)
            if resolve:
                await check_url(project.repair_callback_url, require_https=True,
                                allow_private=request.app[SETTINGS].allow_private_targets)
        except TargetError as exc:
            missing.append(("repair_callback_url", f"in live mode the callback URL {exc}"))
    if await projects.count_live_keys(conn, project.id) == 0:
        missing.append(("api_keys", "create an API key first (POST .../keys)"))
    found = await destinations.list_destinations(conn, project.id)
    if not found:
        missing.append(("alert_destinations", "add an alert destination first (POST .../alert-destinations)"))
    for destination in found:
        kind = KINDS[destination.type]
        if (fault := kind.live_fault(destination.target)) is not None:
            missing.append(("alert_destinations", f"in live mode {kind.label} {destination.id} {fault}"))
    return missing
