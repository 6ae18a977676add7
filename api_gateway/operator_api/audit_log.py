"""``GET /api/v1/projects/{id}/audit-log``: the project's hash-chained audit log (``audit_log``,
appended by the audit sink), newest first, cursor paging."""

from __future__ import annotations

from aiohttp import web

from api_gateway.operator_api.common import visible_project
from api_gateway.problems import Problem
from api_gateway.responses import decode_cursor, json_response, list_params, page
from api_gateway.state import POOL
from store import audit_log
from store.audit_log import AuditLogRow


def entry_document(row: AuditLogRow) -> dict[str, object]:
    return {"id": row.event_id, "seq": row.seq, "actor": row.actor, "action": row.action,
            "target": row.target, "data": row.data, "source_address": row.source_address,
            "occurred_at": row.occurred_at, "prev_hash": row.prev_hash, "hash": row.hash}


async def list_(request: web.Request) -> web.Response:
    limit = list_params(request)
    cursor = decode_cursor(request, 1)
    if cursor is not None and not (type(cursor[0]) is int and 0 <= cursor[0] < 2**63):
        raise Problem(400, "invalid-cursor", "Invalid cursor", "The cursor is not one this API gave out.")
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        rows = await audit_log.list_for_chain(conn, audit_log.chain_of(project.id),
                                              before_seq=cursor[0] if cursor else None, limit=limit + 1)
    return json_response(200, page(rows, limit, entry_document, lambda row: [row.seq]))
