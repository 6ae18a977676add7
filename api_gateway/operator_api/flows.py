"""``/api/v1/projects/{id}/flows/{reference}``: an operator looks a flow up by its reference, with its
whole timeline.

The flow document is the one API keys get (``ingest.flow_document``), and its ``timeline`` is the
project's audit log (``audit_log``) about the reference and its incident, oldest first: the flow's
transitions (``flow.*``, with status and cause), operator actions on the incident (``incident.*``),
repair-callback attempts (``callback.*``) and alert sends (``alert.*``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api_gateway.ingest import find_flow, flow_document
from api_gateway.operator_api.common import visible_project
from api_gateway.responses import json_response
from api_gateway.state import POOL
from store import audit_log
from store.audit_log import AuditLogRow

# A flow's timeline holds a handful of transitions and actions, plus a line per callback attempt
# and alert send, both bounded by their retry schedules; this keeps a runaway one answerable.
MAX_TIMELINE_ENTRIES = 1000
# What a transition's entry shows of the flow data it carries (the rest is the flow document's).
TRANSITION_FIELDS = ("status", "previous_status", "cause")


def timeline_entry(row: AuditLogRow) -> dict[str, Any]:
    entry: dict[str, Any] = {"occurred_at": row.occurred_at, "action": row.action, "actor": row.actor,
                             "target": row.target}
    if row.action.startswith("flow."):
        return entry | {name: row.data.get(name) for name in TRANSITION_FIELDS}
    return entry | {"data": row.data}


async def read(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        flow, incident = await find_flow(conn, project.id, request.match_info["reference"])
        targets = [flow.reference] + ([] if flow.incident_id is None else [flow.incident_id])
        rows = await audit_log.list_for_targets(conn, audit_log.chain_of(project.id), targets,
                                                limit=MAX_TIMELINE_ENTRIES)
    return json_response(200, {**flow_document(flow, incident),
                               "timeline": [timeline_entry(row) for row in rows]})
