"""``/api/v1/projects/{id}/flows/{reference}``: an operator looks a flow up by its reference, with its
whole timeline.

The flow document is the one API keys get (``ingest.flow_document``: one cycle of the reference in
one mode, ``?mode=`` and ``?cycle=`` as there, with the list of its cycles), and its ``timeline`` is
the project's audit log (``audit_log``) about that cycle and its incident, oldest first: the
cycle's transitions (``flow.*``, with status and cause) and repeated receipts, operator actions on
the incident (``incident.*``), repair-callback attempts (``callback.*``) and alert sends (``alert.*``);
any other entry (``flow.forgotten``) shows its data.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api_gateway.ingest import find_flow, flow_document, flow_query
from api_gateway.operator_api.common import visible_project
from api_gateway.responses import json_response
from api_gateway.state import POOL
from store import audit_log
from store.audit_log import AuditLogRow
from topics.fields import parse_timestamp
from topics.messages import FlowStatus

# A flow's timeline holds a handful of transitions and actions, plus a line per callback attempt
# and alert send, both bounded by their retry schedules; this keeps a runaway one answerable.
MAX_TIMELINE_ENTRIES = 1000
# What a transition's entry shows of the flow data it carries (the rest is the flow document's).
TRANSITION_FIELDS = ("status", "previous_status", "cause")
TRANSITIONS = frozenset(f"flow.{status.value}" for status in FlowStatus)
RECEIPT_REPEATED = "flow.receipt_repeated"


def timeline_entry(row: AuditLogRow) -> dict[str, Any]:
    entry: dict[str, Any] = {"occurred_at": row.occurred_at, "action": row.action, "actor": row.actor,
                             "target": row.target}
    if row.action == RECEIPT_REPEATED:
        # What the repeat changed: the count, and when the newest receipt came (in the wire form).
        last = parse_timestamp(str(row.data.get("last_receipt_at")))
        return entry | {"receipts": row.data.get("receipts"), "last_receipt_at": last or row.occurred_at}
    if row.action in TRANSITIONS:
        return entry | {name: row.data.get(name) for name in TRANSITION_FIELDS}
    return entry | {"data": row.data}


async def read(request: web.Request) -> web.Response:
    query = flow_query(request)
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        found = await find_flow(conn, project, request.match_info["reference"], query)
        rows = await audit_log.list_for_flow(conn, audit_log.chain_of(project.id), found.flow,
                                             limit=MAX_TIMELINE_ENTRIES)
    return json_response(200, {**flow_document(found), "timeline": [timeline_entry(row) for row in rows]})
