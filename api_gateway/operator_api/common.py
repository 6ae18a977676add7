"""What every operator handler shares: who is asking, which projects they may see, auditing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from api_gateway.control_plane import Actor
from api_gateway.problems import Problem
from api_gateway.responses import decode_cursor
from api_gateway.state import OPERATOR
from common.ids import is_well_formed
from store.db import Connection
from store.operators import Operator
from store.projects import Project, get_project
from topics.fields import parse_timestamp


def operator_of(request: web.Request) -> Operator:
    operator: Operator = request[OPERATOR]  # set by the auth middleware on every operator route
    return operator


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


def actor(request: web.Request) -> Actor:
    return Actor(actor_of(request), {"operator_email": operator_of(request).email}, request.remote)


async def record_audit(conn: Connection, request: web.Request, *, project_id: str | None, action: str,
                       target: str, data: dict[str, Any] | None = None) -> None:
    """Audit an operator action inside its transaction: both commit, or neither."""
    await actor(request).record(conn, project_id=project_id, action=action, target=target, data=data)


def path_id(request: web.Request, name: str, prefix: str, not_found: Problem) -> str:
    """A resource id from the path; one that is not even well formed names nothing: 404."""
    value = request.match_info[name]
    if not is_well_formed(prefix, value):
        raise not_found
    return value


class Created(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


def created_cursor_of(row: Created) -> list[str]:
    # The cursor keeps microseconds: two rows created in the same millisecond stay apart.
    return [row.created_at.isoformat(), row.id]


def created_cursor(request: web.Request, prefix: str) -> tuple[datetime, str] | None:
    """Where a newest-first list of ``prefix`` ids resumes (``?cursor=`` from ``created_cursor_of``)."""
    cursor = decode_cursor(request, 2)
    if cursor is None:
        return None
    at = parse_timestamp(str(cursor[0]))
    if at is None or not is_well_formed(prefix, str(cursor[1])):
        raise Problem(400, "invalid-cursor", "Invalid cursor", "The cursor is not one this API gave out.")
    return at, str(cursor[1])
