"""Console pages of incidents: a project's list (filters, counts, newest first, paged) and an
incident's page (its timeline, replays and callback attempts, alerts) with Acknowledge, Reprocess
and Resolve. Both refresh themselves while open (``static/console.js``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from api_gateway.console.forms import answered, field_messages, parsed, read_form, see_other, text
from api_gateway.console.pages import render
from api_gateway.operator_api.bodies import parse_resolve
from api_gateway.operator_api.common import visible_project
from api_gateway.operator_api.flows import MAX_TIMELINE_ENTRIES, timeline_entry
from api_gateway.operator_api.incidents import (
    acknowledge_incident,
    incident_cursor,
    incident_filter,
    reprocess_incident,
    resolve_incident,
    run_on_open_incident,
    visible_incident,
)
from api_gateway.problems import Problem
from api_gateway.responses import encode_cursor
from api_gateway.state import POOL
from store import audit_log, incidents
from store.db import Connection
from store.flows import get_flow_of_incident
from store.incidents import Incident, ListedStatus
from topics.fields import Mode
from topics.messages import IncidentReason

PAGE_SIZE = 50
FILTERS = ("status", "mode", "reason", "reference")


async def list_(request: web.Request) -> web.Response:
    # A filter left at "any" comes as an empty value: it narrows nothing.
    chosen = {name: request.query[name] for name in FILTERS if request.query.get(name)}
    where = incident_filter(chosen)
    before = incident_cursor(request)
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        found = await incidents.list_incidents(conn, project.id, where=where, before=before,
                                               limit=PAGE_SIZE + 1)
        counts = await incidents.count_by_status(conn, project.id)
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    next_cursor = (encode_cursor([found[-1].opened_at.isoformat(), found[-1].id]) if more and found
                   else None)
    return render(request, "incidents.html", project=project, incidents=found, counts=counts, chosen=chosen,
                  statuses=tuple(ListedStatus), modes=tuple(Mode), reasons=tuple(IncidentReason),
                  next_cursor=next_cursor)


async def show(request: web.Request, *, errors: Problem | None = None, note: str = "") -> web.Response:
    async with request.app[POOL].connection() as conn:
        incident = await visible_incident(request, conn)
        project = await visible_project(request, conn, incident.project_id)
        flow = await get_flow_of_incident(conn, incident.project_id, incident.mode, incident.reference,
                                          incident.id)
        timeline = [] if flow is None else [
            timeline_entry(row) for row in await audit_log.list_for_flow(
                conn, audit_log.chain_of(project.id), flow, limit=MAX_TIMELINE_ENTRIES)]
    return render(request, "incident.html", status=errors.status if errors else 200, project=project,
                  incident=incident, flow=flow, timeline=timeline, errors=errors,
                  fields=field_messages(errors) if errors else {}, note=note)


Act = Callable[[Connection, Incident], Awaitable[object]]


async def _act(request: web.Request, act_on: Act, note: str = "") -> web.Response:
    """Run an action on the path's incident as the API does, then show the incident again."""
    async def on_incident(conn: Connection, incident: Incident) -> web.Response:
        await act_on(conn, incident)
        return see_other(f"/incidents/{incident.id}")

    return await answered(lambda: run_on_open_incident(request, on_incident, store_refusals=False),
                          lambda problem: show(request, errors=problem, note=note))


async def acknowledge(request: web.Request) -> web.Response:
    await read_form(request)
    return await _act(request, lambda conn, incident: acknowledge_incident(request, conn, incident))


async def resolve(request: web.Request) -> web.Response:
    form = await read_form(request)
    note_text = text(form, "note")

    async def resolve_with_note(conn: Connection, incident: Incident) -> Incident:
        return await resolve_incident(request, conn, incident, parsed(parse_resolve, {"note": note_text}))

    return await _act(request, resolve_with_note, note_text)


async def reprocess(request: web.Request) -> web.Response:
    await read_form(request)
    return await _act(request, lambda conn, incident: reprocess_incident(request, conn, incident))
