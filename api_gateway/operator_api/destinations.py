"""``/api/v1/projects/{id}/alert-destinations``: where incidents are announced, and test alerts."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from api_gateway.http_input import parsed_body
from api_gateway.idempotency import run_idempotent
from api_gateway.operator_api.bodies import DestinationCreate, parse_destination
from api_gateway.operator_api.common import (
    created_cursor,
    created_cursor_of,
    operator_of,
    path_id,
    record_audit,
    visible_project,
)
from api_gateway.operator_api.projects import hold_live_prerequisites
from api_gateway.problems import Problem, invalid_fields
from api_gateway.responses import json_response, list_params, page
from api_gateway.state import POOL, SETTINGS
from channels import KINDS, TargetRules, TransportError, open_channels
from channels.message import TEST, Alert
from common.targets import TargetError
from store import destinations
from store.db import Connection
from store.destinations import Destination
from store.projects import Project
from topics.fields import Mode, format_timestamp


def destination_document(destination: Destination) -> dict[str, object]:
    return {"id": destination.id, "type": destination.type, "target": destination.target,
            "created_at": destination.created_at, "last_failure": destination.last_failure,
            "failed_at": destination.failed_at}


def _not_found(request: web.Request) -> Problem:
    return Problem(404, "destination-not-found", "Alert destination not found",
                   f"No alert destination {request.match_info['destination_id']!r} in this project.")


async def create(request: web.Request) -> web.Response:
    body = await parsed_body(request, parse_destination)

    async def action(conn: Connection) -> web.Response:
        return json_response(201, destination_document(await add_destination(request, conn, body)))

    return await run_idempotent(request, operator_of(request).id, action)


async def add_destination(request: web.Request, conn: Connection, body: DestinationCreate) -> Destination:
    project = await visible_project(request, conn)
    target = await _checked_target(request, project, body)
    created = await destinations.add_destination(conn, project.id, body.type, target)
    await hold_live_prerequisites(request, conn, project.id)
    await record_audit(conn, request, project_id=project.id, action="destination.added",
                       target=created.id, data={"type": created.type, "target": created.target})
    return created


async def _checked_target(request: web.Request, project: Project, body: DestinationCreate) -> str:
    """The destination's target once it passes its kind's check (``channels``)."""
    rules = TargetRules(live=project.mode == Mode.LIVE,
                        allow_private=request.app[SETTINGS].allow_private_targets)
    try:
        return await KINDS[body.type].check_target(body.target, rules)
    except TargetError as exc:
        live = " (the project is live: live mode needs https)" if project.mode == Mode.LIVE else ""
        raise invalid_fields([("target", f"{exc}{live}")]) from None


async def list_(request: web.Request) -> web.Response:
    limit = list_params(request)
    before = created_cursor(request, "dst")
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        found = await destinations.list_destinations(conn, project.id, before=before, limit=limit + 1)
    return json_response(200, page(found, limit, destination_document, created_cursor_of))


async def delete(request: web.Request) -> web.Response:
    async def action(conn: Connection) -> web.Response:
        return json_response(200, destination_document(await remove_destination(request, conn)))

    return await run_idempotent(request, operator_of(request).id, action)


async def remove_destination(request: web.Request, conn: Connection) -> Destination:
    """Remove the path's destination (``{destination_id}``); a live project keeps at least one."""
    project = await visible_project(request, conn)
    not_found = _not_found(request)
    destination_id = path_id(request, "destination_id", "dst", not_found)
    removed = await destinations.remove_destination(conn, project.id, destination_id)
    if removed is None:
        raise not_found
    await hold_live_prerequisites(request, conn, project.id)
    await record_audit(conn, request, project_id=project.id, action="destination.removed",
                       target=removed.id, data={"type": removed.type, "target": removed.target})
    return removed


async def send_test(request: web.Request) -> web.Response:
    """200 when the channel took the test alert, 502 with the channel's error when not. A 502
    releases the Idempotency-Key, so a retry sends again."""
    async def action(conn: Connection) -> web.Response:
        tested, error = await test_destination(request, conn)
        if error is not None:
            kind = "refused for good" if error.permanent else "failed for now"
            # Returned, not raised: the audit entry commits with it.
            return Problem(502, "alert-send-failed", "The test alert was not sent",
                           f"The {tested.type} channel {kind}: {error.message}").response()
        return json_response(200, {"outcome": "sent", "destination": destination_document(tested)})

    return await run_idempotent(request, operator_of(request).id, action)


async def test_destination(request: web.Request,
                           conn: Connection) -> tuple[Destination, TransportError | None]:
    """Send a test alert to the path's destination now, through the channel the alerts sink uses;
    the destination as it is afterwards, and the channel's error if it did not take the alert.
    Audited either way; a permanent failure is recorded on the destination like the sink's."""
    project = await visible_project(request, conn)
    not_found = _not_found(request)
    destination = await destinations.get_destination(
        conn, project.id, path_id(request, "destination_id", "dst", not_found))
    if destination is None:
        raise not_found
    error: TransportError | None = None
    try:
        async with open_channels(request.app[SETTINGS]) as channels:
            await channels[destination.type].send(destination.target, _test_alert(project))
    except TransportError as exc:
        error = exc
    if error is None or error.permanent:
        await destinations.record_outcome(conn, destination.id, None if error is None else error.message)
    await record_audit(conn, request, project_id=project.id, action="destination.tested",
                       target=destination.id,
                       data={"type": destination.type, "target": destination.target,
                             "outcome": "sent" if error is None else "failed",
                             "error": None if error is None else error.message})
    tested = await destinations.get_destination(conn, project.id, destination.id)
    if tested is None:  # removed by another request while the alert was sent
        raise not_found
    return tested, error


def _test_alert(project: Project) -> Alert:
    return Alert(kind=TEST, project_id=project.id, project_name=project.name, mode=project.mode,
                 occurred_at=format_timestamp(datetime.now(UTC)))
