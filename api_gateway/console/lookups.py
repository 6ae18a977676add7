"""Console pages that look things up: a flow by its reference (status, deadline, timeline) and a
project's audit log (newest first, by actor and action, with the chain's verification)."""

from __future__ import annotations

from aiohttp import web

from api_gateway.console.pages import render
from api_gateway.ingest import FlowQuery, find_flow, query_mode
from api_gateway.operator_api.common import visible_project
from api_gateway.operator_api.flows import MAX_TIMELINE_ENTRIES, timeline_entry
from api_gateway.problems import Problem
from api_gateway.state import POOL
from store import audit_log

AUDIT_PAGE_SIZE = 100


def _whole_number(request: web.Request, name: str) -> int | None:
    """A query parameter that is a whole number (below 10**18), else None: the page shows all."""
    raw = request.query.get(name, "")
    # isdigit() alone accepts "²"; the length bound keeps int() off absurdly long strings.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


async def flow(request: web.Request) -> web.Response:
    reference = request.query.get("reference", "").strip()
    mode = query_mode(request.query.get("mode") or None)
    cycle = _whole_number(request, "cycle")
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        found = timeline = not_found = None
        if reference:
            try:
                found = await find_flow(conn, project, reference, FlowQuery(mode, cycle))
            except Problem as problem:
                if problem.status != 404:
                    raise
                not_found = problem.detail
        if found is not None:
            timeline = [timeline_entry(row) for row in await audit_log.list_for_flow(
                conn, audit_log.chain_of(project.id), found.flow, limit=MAX_TIMELINE_ENTRIES)]
    return render(request, "flow.html", status=404 if not_found else 200, project=project,
                  reference=reference, mode=mode or "", found=found, timeline=timeline, not_found=not_found)


async def audit(request: web.Request) -> web.Response:
    actor = request.query.get("actor") or None
    action = request.query.get("action") or None
    before = _whole_number(request, "before")
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        chain = audit_log.chain_of(project.id)
        rows = await audit_log.list_for_chain(conn, chain, before_seq=before, limit=AUDIT_PAGE_SIZE + 1,
                                              actor=actor, action=action)
        # Verifying reads the whole chain: on request only, not on every view.
        verified = await audit_log.verify_chain(conn, chain) if request.query.get("verify") else None
    more = len(rows) > AUDIT_PAGE_SIZE
    rows = rows[:AUDIT_PAGE_SIZE]
    return render(request, "audit_log.html", project=project, rows=rows, actor=actor or "",
                  action=action or "", verified=verified, next_before=rows[-1].seq if more and rows else None)
