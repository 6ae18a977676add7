"""``/api/v1/operators`` and ``/api/v1/projects/{id}/members``: admins manage operators, their
tokens and memberships through the API (only the very first admin comes from ``sendpromptly operator
create``). Every change goes through ``api_gateway.control_plane``, audited with the admin as actor."""

from __future__ import annotations

from aiohttp import web

from api_gateway import control_plane
from api_gateway.http_input import parsed_body
from api_gateway.idempotency import run_idempotent, with_secret_redacted
from api_gateway.operator_api.bodies import parse_operator_invite
from api_gateway.operator_api.common import (
    actor,
    created_cursor,
    created_cursor_of,
    operator_of,
    path_id,
    visible_project,
)
from api_gateway.problems import Problem
from api_gateway.responses import json_document, json_response, list_params, page
from api_gateway.state import POOL
from store import operators
from store.db import Connection
from store.errors import RowMissing
from store.operators import Operator, TokenInfo

# Why an invitation was refused -> the answer's status.
_REFUSED_STATUS = {"project-not-found": 404, "email-taken": 409}


def operator_document(operator: Operator) -> dict[str, object]:
    return {"id": operator.id, "email": operator.email, "admin": operator.is_admin,
            "project_ids": sorted(operator.project_ids), "created_at": operator.created_at,
            "deactivated_at": operator.deactivated_at, "active": operator.deactivated_at is None}


def token_document(token: TokenInfo) -> dict[str, object]:
    return {"id": token.id, "operator_id": token.operator_id, "created_at": token.created_at,
            "last_used_at": token.last_used_at, "revoked_at": token.revoked_at,
            "revoked": token.revoked_at is not None}


def require_admin(request: web.Request) -> None:
    if not operator_of(request).is_admin:
        raise Problem(403, "admin-only", "Admins only",
                      "Only an admin manages operators; ask an admin of this installation.")


async def target_operator(request: web.Request, conn: Connection, *, active: bool = False) -> Operator:
    """The operator named in the path; with ``active``, refused (409) once removed."""
    not_found = Problem(404, "operator-not-found", "Operator not found",
                        f"No operator {request.match_info['operator_id']!r}; "
                        "list them with GET /api/v1/operators.")
    operator = await operators.get_operator(conn, path_id(request, "operator_id", "opr", not_found))
    if operator is None:
        raise not_found
    if active and operator.deactivated_at is not None:
        raise Problem(409, "operator-removed", "Operator removed",
                      f"Operator {operator.email} was removed; invite them again under another email.")
    return operator


async def list_(request: web.Request) -> web.Response:
    require_admin(request)
    limit = list_params(request)
    before = created_cursor(request, "opr")
    async with request.app[POOL].connection() as conn:
        found = await operators.list_operators(conn, before=before, limit=limit + 1)
    return json_response(200, page(found, limit, operator_document, created_cursor_of))


async def read(request: web.Request) -> web.Response:
    require_admin(request)
    async with request.app[POOL].connection() as conn:
        operator = await target_operator(request, conn)
    return json_response(200, operator_document(operator))


async def invite(request: web.Request) -> web.Response:
    require_admin(request)
    body = await parsed_body(request, parse_operator_invite)

    async def action(conn: Connection) -> web.Response:
        try:
            invited = await control_plane.invite_operator(
                conn, actor(request), email=body.email, is_admin=body.is_admin,
                project_ids=body.project_ids or [])
        except control_plane.Refused as refused:
            raise Problem(_REFUSED_STATUS[refused.code], refused.code, "Cannot invite the operator",
                          f"Nothing was changed: {refused}.") from None
        shown = {**operator_document(invited.operator), "token_id": invited.token.id}
        # Token and password are shown this once; the replay's stored copy has neither.
        return with_secret_redacted(
            json_response(201, {**shown, "token": invited.token.token, "password": invited.password}),
            {**json_document(shown), "token": None, "password": None, "secrets_redacted": True})

    return await run_idempotent(request, operator_of(request).id, action)


async def deactivate(request: web.Request) -> web.Response:
    require_admin(request)

    async def action(conn: Connection) -> web.Response:
        operator = await target_operator(request, conn)
        if operator.id == operator_of(request).id:
            raise Problem(409, "cannot-remove-yourself", "Cannot remove yourself",
                          "Ask another admin to remove you, so that an admin is always left.")
        await control_plane.deactivate_operator(conn, actor(request), operator)
        return json_response(200, operator_document(await _reread(conn, operator)))

    return await run_idempotent(request, operator_of(request).id, action)


async def issue_token(request: web.Request) -> web.Response:
    require_admin(request)

    async def action(conn: Connection) -> web.Response:
        operator = await target_operator(request, conn, active=True)
        issued = await control_plane.issue_token(conn, actor(request), operator)
        info = await operators.get_token(conn, operator.id, issued.id)
        if info is None:
            raise RowMissing(f"token {issued.id} of operator {operator.id}, issued in this very transaction")
        shown = token_document(info)
        return with_secret_redacted(
            json_response(201, {**shown, "token": issued.token}),
            {**json_document(shown), "token": None, "token_redacted": True})

    return await run_idempotent(request, operator_of(request).id, action)


async def revoke_token(request: web.Request) -> web.Response:
    require_admin(request)

    async def action(conn: Connection) -> web.Response:
        operator = await target_operator(request, conn)
        not_found = Problem(404, "token-not-found", "Token not found",
                            f"Operator {operator.email} has no token {request.match_info['token_id']!r}.")
        token_id = path_id(request, "token_id", "tok", not_found)
        await control_plane.revoke_token(conn, actor(request), operator, token_id)
        info = await operators.get_token(conn, operator.id, token_id)
        if info is None:
            raise not_found
        return json_response(200, token_document(info))

    return await run_idempotent(request, operator_of(request).id, action)


async def add_member(request: web.Request) -> web.Response:
    return await _set_member(request, member=True)


async def remove_member(request: web.Request) -> web.Response:
    return await _set_member(request, member=False)


async def _set_member(request: web.Request, *, member: bool) -> web.Response:
    require_admin(request)

    async def action(conn: Connection) -> web.Response:
        project = await visible_project(request, conn)
        # A removed operator can lose a membership but not gain one.
        operator = await target_operator(request, conn, active=member)
        await control_plane.set_member(conn, actor(request), project.id, operator, member=member)
        return json_response(200, operator_document(await _reread(conn, operator)))

    return await run_idempotent(request, operator_of(request).id, action)


async def _reread(conn: Connection, operator: Operator) -> Operator:
    changed = await operators.get_operator(conn, operator.id)
    if changed is None:  # operators are deactivated, never deleted
        raise RowMissing(f"operator {operator.id}, read earlier in this transaction")
    return changed
