"""What every operator handler shares: who is asking, which projects they may see, auditing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api_gateway.problems import Problem
from api_gateway.responses import json_document
from api_gateway.state import OPERATOR
from sendpromptly.ids import is_well_formed
from store import audit
from store.db import Connection
from store.operators import Operator
from store.projects import Project, get_project


def operator_of(request: web.Request) -> Operator:
    return request[OPERATOR]


def actor_of(request: web.Request) -> str:
    return f"operator:{operator_of(request).id}"


def project_not_found(project_id: str) -> Problem:
    # The same answer whether the project does not exist or belongs to someone else: a member
    # must not learn which project ids exist.
    return Problem(404, "project-not-found", "Project not found",
                   f"No project {project_id!r} that you can see.")


async def visible_project(request: web.Request, conn: Connection, project_id: str | None = None) -> Project:
    project_id = project_id or request.match_info["project_id"]
    if not is_well_formed("prj", project_id) or not operator_of(request).can_see(project_id):
        raise project_not_found(project_id)
    project = await get_project(conn, project_id)
    if project is None:
        raise project_not_found(project_id)
    return project


async def record_audit(conn: Connection, request: web.Request, *, project_id: str | None, action: str,
                       target: str, data: dict[str, Any] | None = None) -> None:
    """Audit an operator action inside its transaction: both commit, or neither."""
    await audit.record(
        conn, project_id=project_id, actor=actor_of(request), action=action, target=target,
        data=json_document({"operator_email": operator_of(request).email, **(data or {})}),
        source_address=request.remote,
    )


def path_id(request: web.Request, name: str, prefix: str, not_found: Problem) -> str:
    """A resource id from the path; one that is not even well formed names nothing: 404."""
    value = request.match_info[name]
    if not is_well_formed(prefix, value):
        raise not_found
    return value


def project_document(project: Project) -> dict[str, Any]:
    return {
        "id": project.id, "name": project.name, "mode": project.mode,
        "timeout_minutes": project.timeout_minutes, "snapshots_enabled": project.snapshots_enabled,
        "repair_callback_url": project.repair_callback_url, "created_at": project.created_at,
    }
