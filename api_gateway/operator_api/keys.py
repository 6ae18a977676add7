"""``/api/v1/projects/{id}/keys``: API keys, shown in full once, then only their visible parts."""

from __future__ import annotations

from aiohttp import web

from api_gateway.control_plane import create_api_key
from api_gateway.http_input import parsed_body
from api_gateway.idempotency import run_idempotent, with_secret_redacted
from api_gateway.operator_api.bodies import parse_key_create
from api_gateway.operator_api.common import (
    actor,
    created_cursor,
    created_cursor_of,
    operator_of,
    path_id,
    record_audit,
    visible_project,
)
from api_gateway.operator_api.projects import hold_live_prerequisites
from api_gateway.problems import Problem
from api_gateway.responses import json_document, json_response, list_params, page
from api_gateway.state import POOL
from store import projects
from store.db import Connection
from store.errors import RowMissing
from store.projects import ApiKeyInfo


def key_document(key: ApiKeyInfo) -> dict[str, object]:
    return {
        "id": key.id, "label": key.label, "prefix": key.prefix, "last_four": key.last_four,
        "created_at": key.created_at, "last_used_at": key.last_used_at, "revoked_at": key.revoked_at,
        "revoked": key.revoked_at is not None,
    }


async def create(request: web.Request) -> web.Response:
    label = await parsed_body(request, parse_key_create)

    async def action(conn: Connection) -> web.Response:
        info, plaintext = await new_key(request, conn, label)
        # The only time the key is shown: the stored copy that a replay returns has it redacted,
        # so the plaintext is never written anywhere.
        shown = key_document(info)
        return with_secret_redacted(
            json_response(201, {**shown, "key": plaintext}),
            {**json_document(shown), "key": None, "key_redacted": True},
        )

    return await run_idempotent(request, operator_of(request).id, action)


async def new_key(request: web.Request, conn: Connection, label: str) -> tuple[ApiKeyInfo, str]:
    """A new API key of the path's project: its stored parts, and the key itself (``sk_...``),
    which nothing stores and which cannot be shown again."""
    project = await visible_project(request, conn)
    key_id, created = await create_api_key(conn, actor(request), project.id, label)
    info = await projects.get_api_key(conn, project.id, key_id)
    if info is None:
        raise RowMissing(f"API key {key_id} of project {project.id}, created in this very transaction")
    return info, created.plaintext


async def list_(request: web.Request) -> web.Response:
    limit = list_params(request)
    before = created_cursor(request, "key")
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        keys = await projects.list_api_keys(conn, project.id, before=before, limit=limit + 1)
    return json_response(200, page(keys, limit, key_document, created_cursor_of))


async def revoke(request: web.Request) -> web.Response:
    async def action(conn: Connection) -> web.Response:
        return json_response(200, key_document(await revoke_key(request, conn)))

    return await run_idempotent(request, operator_of(request).id, action)


async def revoke_key(request: web.Request, conn: Connection) -> ApiKeyInfo:
    """Revoke the path's key (``{key_id}``); revoking it again changes nothing and audits nothing.
    A live project keeps at least one key."""
    project = await visible_project(request, conn)
    not_found = Problem(404, "key-not-found", "API key not found",
                        f"No API key {request.match_info['key_id']!r} in this project.")
    key_id = path_id(request, "key_id", "key", not_found)
    before = await projects.get_api_key(conn, project.id, key_id)
    revoked = await projects.revoke_api_key(conn, project.id, key_id)
    if revoked is None or before is None:
        raise not_found
    if before.revoked_at is None:
        await hold_live_prerequisites(request, conn, project.id)
        await record_audit(conn, request, project_id=project.id, action="api_key.revoked", target=key_id,
                           data={"label": revoked.label, "prefix": revoked.prefix})
    return revoked
