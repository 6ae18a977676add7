"""``/api/v1/projects/{id}/incidents`` and ``/api/v1/incidents/{id}``: read incidents, acknowledge,
resolve and reprocess them.

Reads come from the read model. An action publishes its event (and, to reprocess, the repair
request) and waits for Kafka's acknowledgement before it answers: if Kafka does not take it, the
answer is 503 and the Idempotency-Key is released for the retry. Then, in the transaction that
stores the idempotency record and the audit row, the action applies its own event to the read
model: the operator reads their write at once (a second resolve is a 409 straight away), and the
read-model sink applying the same event from the topic later changes nothing (``store.incidents``
merges idempotently). Event and replay ids derive from the Idempotency-Key, so a retry after a 503
repeats them rather than counting twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api_gateway.http_input import idempotency_key, parsed_body
from api_gateway.idempotency import run_idempotent
from api_gateway.incident_document import incident_document
from api_gateway.operator_api.bodies import parse_resolve
from api_gateway.operator_api.common import actor_of, operator_of, path_id, record_audit, visible_project
from api_gateway.problems import Problem, kafka_unavailable
from api_gateway.publisher import PublishUnavailable
from api_gateway.responses import decode_cursor, json_response, list_params, page
from api_gateway.state import POOL, PUBLISHER, SETTINGS
from common.ids import derived_id, is_well_formed
from store import incidents
from store.db import Connection
from store.errors import RowMissing
from store.flows import get_flow_of_incident
from store.incidents import Incident, IncidentFilter, IncidentStatus, ListedStatus
from store.projects import get_project
from topics import INCIDENTS, REPAIRS, IncidentEvent, RepairRequest, TopicSpec, encode, flow_key
from topics.fields import Checker, FieldErrors, Mode, parse_timestamp
from topics.messages import IncidentEventType, IncidentReason, Resolution

# The query parameters that narrow the list, besides paging.
FILTERS = ("status", "mode", "reason", "reference")

Act = Callable[[Connection, Incident], Awaitable[web.Response]]


# --- reading --------------------------------------------------------------------------------------

async def list_(request: web.Request) -> web.Response:
    limit = list_params(request, *FILTERS)
    where = incident_filter(request.query)
    before = incident_cursor(request)
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        found = await incidents.list_incidents(conn, project.id, where=where, before=before,
                                               limit=limit + 1)
    # The cursor keeps microseconds: two incidents opened in the same millisecond stay apart.
    return json_response(200, page(found, limit, incident_document,
                                   lambda incident: [incident.opened_at.isoformat(), incident.id]))


async def read(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        incident = await visible_incident(request, conn)
    return json_response(200, incident_document(incident))


def incident_filter(query: Mapping[str, str]) -> IncidentFilter:
    """The list's filters from a query, each checked like the field it matches."""
    check = Checker(dict(query))
    where = IncidentFilter(
        status=check.choice("status", ListedStatus, required=False),
        mode=check.choice("mode", Mode, required=False),
        reason=check.choice("reason", IncidentReason, required=False),
        reference=check.reference() if "reference" in query else None,
    )
    try:
        check.done()
    except FieldErrors as exc:
        named = ", ".join(field for field, _ in exc.errors)
        raise Problem(400, "invalid-filter", "Invalid filter",
                      f"These filters have values no incident can have: {named}; see errors.",
                      errors=exc.errors) from None
    return where


def incident_cursor(request: web.Request) -> tuple[datetime, str] | None:
    cursor = decode_cursor(request, 2)
    if cursor is None:
        return None
    at = parse_timestamp(str(cursor[0]))
    if at is None or not is_well_formed("inc", str(cursor[1])):
        raise Problem(400, "invalid-cursor", "Invalid cursor", "The cursor is not one this API gave out.")
    return at, str(cursor[1])


async def visible_incident(request: web.Request, conn: Connection, *, lock: bool = False) -> Incident:
    # The same answer whether the incident does not exist or is in a project the operator cannot
    # see: incident ids of other projects stay unknown.
    not_found = Problem(404, "incident-not-found", "Incident not found",
                        f"No incident {request.match_info['incident_id']!r} that you can see.")
    incident_id = path_id(request, "incident_id", "inc", not_found)
    incident = await incidents.get_incident(conn, incident_id, lock=lock)
    if incident is None or not operator_of(request).can_see(incident.project_id):
        raise not_found
    return incident


# --- actions --------------------------------------------------------------------------------------

async def acknowledge(request: web.Request) -> web.Response:
    async def act(conn: Connection, incident: Incident) -> web.Response:
        return json_response(202, incident_document(await acknowledge_incident(request, conn, incident)))

    return await run_on_open_incident(request, act)


async def resolve(request: web.Request) -> web.Response:
    note = await parsed_body(request, parse_resolve)

    async def act(conn: Connection, incident: Incident) -> web.Response:
        return json_response(202, incident_document(await resolve_incident(request, conn, incident, note)))

    return await run_on_open_incident(request, act)


async def reprocess(request: web.Request) -> web.Response:
    async def act(conn: Connection, incident: Incident) -> web.Response:
        return json_response(202, {"replay_id": await reprocess_incident(request, conn, incident)})

    return await run_on_open_incident(request, act)


async def acknowledge_incident(request: web.Request, conn: Connection, incident: Incident) -> Incident:
    if incident.acknowledged_at is not None:
        # Someone is on it already; acknowledging again announces nothing.
        return incident
    event = _event(request, incident, IncidentEventType.ACKNOWLEDGED)
    await _publish(request, (INCIDENTS, event))
    return await _commit(conn, request, event)


async def resolve_incident(request: web.Request, conn: Connection, incident: Incident, note: str) -> Incident:
    event = _event(request, incident, IncidentEventType.RESOLVED, resolution=Resolution.MANUAL, note=note)
    await _publish(request, (INCIDENTS, event))
    return await _commit(conn, request, event, note=note)


async def reprocess_incident(request: web.Request, conn: Connection, incident: Incident) -> str:
    """Ask for the repair callback to be called again; returns the replay's id."""
    project = await get_project(conn, incident.project_id)
    if project is None or project.repair_callback_url is None:
        raise Problem(409, "no-callback", "No repair callback",
                      "The project has no repair callback URL to call; set one first "
                      "(PUT .../repair-callback).")
    # The incident's own cycle: its event and effect types are what the callback reruns.
    flow = await get_flow_of_incident(conn, incident.project_id, incident.mode, incident.reference,
                                      incident.id)
    if flow is None:
        raise Problem(409, "flow-not-ready", "Flow not ready",
                      "The incident's flow is not in the read model yet; retry in a moment.",
                      headers={"Retry-After": "1"})
    replay_id = derived_id("rpl", incident.id, *_request_identity(request))
    event = _event(request, incident, IncidentEventType.REPROCESS_REQUESTED, replay_id=replay_id)
    repair = RepairRequest(
        replay_id=replay_id, incident_id=incident.id, project_id=incident.project_id,
        reference=incident.reference, mode=incident.mode, event_type=flow.event_type,
        effect_type=flow.effect_type, requested_by=event.actor, requested_at=event.occurred_at,
    )
    # The repair first: "reprocess requested" is announced only once the request is out.
    await _publish(request, (REPAIRS, repair), (INCIDENTS, event))
    await _commit(conn, request, event, replay_id=replay_id)
    return replay_id


async def run_on_open_incident(request: web.Request, act: Act, *,
                               store_refusals: bool = True) -> web.Response:
    """Run ``act`` idempotently on the path's incident, its row locked so that two actions on one
    incident take turns (the second sees what the first did)."""
    async def action(conn: Connection) -> web.Response:
        incident = await visible_incident(request, conn, lock=True)
        if incident.status == IncidentStatus.RESOLVED:
            raise Problem(409, "incident-resolved", "Incident resolved",
                          f"Incident {incident.id} is resolved ({incident.resolution}); "
                          "a resolved incident is final.")
        return await act(conn, incident)

    return await run_idempotent(request, operator_of(request).id, action, store_refusals=store_refusals)


def _request_identity(request: web.Request) -> tuple[str, str]:
    # The idempotency scope and key: the same for a retry of one request, different for any other.
    return operator_of(request).id, idempotency_key(request)


def _event(request: web.Request, incident: Incident, kind: IncidentEventType, **fields: Any) -> IncidentEvent:
    return IncidentEvent(
        event_id=derived_id("ive", incident.id, kind, *_request_identity(request)),
        type=kind, incident_id=incident.id, project_id=incident.project_id, reference=incident.reference,
        mode=incident.mode, actor=actor_of(request), occurred_at=datetime.now(UTC),
        deadline=incident.deadline, **fields,
    )


async def _publish(request: web.Request, *messages: tuple[TopicSpec, IncidentEvent | RepairRequest]) -> None:
    """Each message to its topic, keyed by its flow like the agents' own, acknowledged by Kafka."""
    prefix = request.app[SETTINGS].topic_prefix
    try:
        for topic, message in messages:
            key = flow_key(message.project_id, message.reference)
            await request.app[PUBLISHER].publish(topic.name(prefix), key, encode(message))
    except PublishUnavailable as exc:
        raise kafka_unavailable("The action was not completed", exc) from exc


async def _commit(conn: Connection, request: web.Request, event: IncidentEvent,
                  **audit_data: Any) -> Incident:
    """After Kafka took the event: the read model and the audit row, in the action's transaction."""
    await incidents.apply_event(conn, event)
    await record_audit(conn, request, project_id=event.project_id, action=f"incident.{event.type}",
                       target=event.incident_id, data={"reference": event.reference, **audit_data})
    incident = await incidents.get_incident(conn, event.incident_id)
    if incident is None:  # incidents are never deleted, and this one was read in this transaction
        raise RowMissing(f"incident {event.incident_id}, just changed in this transaction")
    return incident
