"""Console pages of projects: the list (mode, open incidents) with the create form, and a
project's page: settings, what live mode needs, the switch, and the onboarding checklist."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from api_gateway.console.checklist import onboarding_steps
from api_gateway.console.forms import act, field_messages, parsed, read_form, see_other, text
from api_gateway.console.pages import render
from api_gateway.operator_api.bodies import parse_project_create, parse_project_update
from api_gateway.operator_api.common import created_cursor, created_cursor_of, operator_of, visible_project
from api_gateway.operator_api.projects import change_project, live_gaps, new_project
from api_gateway.problems import Problem
from api_gateway.responses import encode_cursor
from api_gateway.state import POOL
from store import incidents, projects
from store.db import Connection
from topics.fields import Mode

PAGE_SIZE = 50
# What live mode needs, by the field its gap names (``live_gaps``), as the switch lists it.
LIVE_NEEDS = (("repair_callback_url", "An https repair callback on a public address", "callback"),
              ("api_keys", "An active API key", "keys"),
              ("alert_destinations", "An alert destination (Slack over https)", "alerts"))


async def list_(request: web.Request, *, errors: Problem | None = None,
                values: dict[str, str] | None = None) -> web.Response:
    operator = operator_of(request)
    before = created_cursor(request, "prj")
    async with request.app[POOL].connection() as conn:
        found = await projects.list_projects(conn, operator_id=None if operator.is_admin else operator.id,
                                             before=before, limit=PAGE_SIZE + 1)
        open_counts = await incidents.count_open(conn, [p.id for p in found])
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    return render(request, "projects.html", status=errors.status if errors else 200, projects=found,
                  open_counts=open_counts, errors=errors, fields=field_messages(errors) if errors else {},
                  values=values or {},
                  next_cursor=encode_cursor(created_cursor_of(found[-1])) if more and found else None)


def _timeout(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The timeout field as the API takes it: a whole number, or left out when blank."""
    raw = text(form, "timeout_minutes").strip()
    if not raw:
        return {}
    return {"timeout_minutes": int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else raw}


async def create(request: web.Request) -> web.Response:
    form = await read_form(request)
    values = {"name": text(form, "name")}

    async def action(conn: Connection) -> web.Response:
        body = parsed(parse_project_create, {**values, **_timeout(form)})
        project = await new_project(request, conn, body.values)
        return see_other(f"/projects/{project.id}")

    async def refused(problem: Problem) -> web.Response:
        return await list_(request, errors=problem,
                           values={**values, "timeout_minutes": text(form, "timeout_minutes")})

    return await act(request, action, refused)


async def show(request: web.Request, *, errors: Problem | None = None) -> web.Response:
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        # The host is not resolved for the page: a slow DNS answer must not hold it up (the switch
        # itself checks the address).
        gaps = await live_gaps(request, conn, project, resolve=False)
        steps = (await onboarding_steps(conn, project, str(request.url.origin()))
                 if project.mode == Mode.TEST else [])
        counts = await incidents.count_by_status(conn, project.id)
    missing: dict[str, list[str]] = {}
    for field, message in gaps:
        missing.setdefault(field, []).append(message)
    needs = [(label, page, missing.get(field, [])) for field, label, page in LIVE_NEEDS]
    return render(request, "project.html", status=errors.status if errors else 200, project=project,
                  needs=needs, ready=not gaps, steps=steps, counts=counts, errors=errors,
                  next_step=next((i for i, step in enumerate(steps) if not step.done), None),
                  fields=field_messages(errors) if errors else {})


async def update_settings(request: web.Request) -> web.Response:
    form = await read_form(request)

    async def action(conn: Connection) -> web.Response:
        body = parsed(parse_project_update, {"name": text(form, "name"), **_timeout(form),
                                             "snapshots_enabled": form.get("snapshots_enabled") == "on"})
        project = await change_project(request, conn, body.values)
        return see_other(f"/projects/{project.id}")

    return await act(request, action, lambda problem: show(request, errors=problem))


async def switch_mode(request: web.Request) -> web.Response:
    form = await read_form(request)
    mode = text(form, "mode")

    async def action(conn: Connection) -> web.Response:
        if mode == Mode.LIVE and form.get("confirm") != "on":
            raise Problem(422, "invalid-fields", "Confirm the switch",
                          "Tick the box to confirm that live traffic starts now.",
                          errors=[("confirm", "tick to confirm the switch to live mode")])
        project = await change_project(request, conn, parsed(parse_project_update, {"mode": mode}).values)
        return see_other(f"/projects/{project.id}")

    return await act(request, action, lambda problem: show(request, errors=problem))
