"""Ingest handlers: receipts and results in, flow state out."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from aiohttp import web
from prometheus_client import Counter

from api_gateway.http_input import idempotency_key, parsed_body
from api_gateway.idempotency import Accepted, run_idempotent_publish
from api_gateway.incident_document import incident_document
from api_gateway.ingest_bodies import parse_receipt, parse_result
from api_gateway.metrics import child
from api_gateway.problems import Problem, kafka_unavailable
from api_gateway.publisher import PublishUnavailable
from api_gateway.responses import json_response
from api_gateway.snapshots import seal
from api_gateway.state import POOL, PROJECT, PUBLISHER, SETTINGS, SNAPSHOT_KEYRING
from store.db import Connection
from store.flows import FlowView, get_flow
from store.incidents import Incident, get_incident
from store.projects import Project
from topics import RECEIPTS, RESULTS, Receipt, Result, TopicSpec, encode, flow_key
from topics.fields import MAX_REFERENCE_CHARS

SIGNALS = Counter("sendpromptly_ingest_signals_total", "Signals accepted (acknowledged by Kafka)",
                  ["kind", "mode"])


async def _publish(request: web.Request, topic: TopicSpec, project: Project, kind: str,
                   signal: Receipt | Result) -> None:
    try:
        await request.app[PUBLISHER].publish(topic.name(request.app[SETTINGS].topic_prefix),
                                             flow_key(project.id, signal.reference), encode(signal))
    except PublishUnavailable as exc:
        raise kafka_unavailable("The signal was not stored", exc) from exc
    child(SIGNALS, kind, project.mode).inc()


async def post_receipt(request: web.Request) -> web.Response:
    key = idempotency_key(request)
    body = await parsed_body(request, parse_receipt)
    project: Project = request[PROJECT]
    timeout = timedelta(seconds=body.timeout_seconds or project.timeout_minutes * 60)

    def accepted_at(received_at: datetime) -> Accepted:
        receipt = Receipt(
            project_id=project.id, idempotency_key=key, reference=body.reference, event_type=body.event_type,
            effect_type=body.effect_type, received_at=received_at, timeout_seconds=body.timeout_seconds,
            mode=project.mode,
            snapshot=seal(request.app[SNAPSHOT_KEYRING], project, body.reference, body.payload),
        )
        answer = json_response(202, {
            "project_id": project.id, "reference": body.reference, "status": "pending",
            "deadline": received_at + timeout, "mode": project.mode,
        })
        return Accepted(answer, partial(_publish, request, RECEIPTS, project, "receipt", receipt))

    return await run_idempotent_publish(request, project.id, accepted_at)


async def post_result(request: web.Request) -> web.Response:
    key = idempotency_key(request)
    body = await parsed_body(request, parse_result)
    project: Project = request[PROJECT]
    answer = json_response(202, {"project_id": project.id, "reference": body.reference,
                                 "status": body.status, "mode": project.mode})

    def accepted_at(received_at: datetime) -> Accepted:
        result = Result(
            project_id=project.id, idempotency_key=key, reference=body.reference, status=body.status,
            received_at=received_at, replay_id=body.replay_id, detail=body.detail, mode=project.mode,
        )
        return Accepted(answer, partial(_publish, request, RESULTS, project, "result", result))

    return await run_idempotent_publish(request, project.id, accepted_at)


async def get_flow_state(request: web.Request) -> web.Response:
    project: Project = request[PROJECT]
    async with request.app[POOL].connection() as conn:
        flow, incident = await find_flow(conn, project.id, request.match_info["reference"])
    return json_response(200, flow_document(flow, incident))


async def find_flow(conn: Connection, project_id: str, reference: str) -> tuple[FlowView, Incident | None]:
    """The project's flow of ``reference`` and the incident it names; else a 404 problem."""
    flow = incident = None
    # A reference that breaks the field rules (e.g. holds a NUL) was never accepted: nothing to find.
    if reference.isprintable() and 1 <= len(reference) <= MAX_REFERENCE_CHARS:
        flow = await get_flow(conn, project_id, reference)
        # The incident the flow names, not any incident of the reference: the read model takes
        # a flow's status and its incidents from two topics, and a flow still shown `pending`
        # beside an opened incident would contradict itself.
        if flow is not None and flow.incident_id is not None:
            incident = await get_incident(conn, flow.incident_id)
    if flow is None:
        raise Problem(
            404, "flow-not-found", "Flow not found",
            f"No flow with reference {reference!r} in this project "
            "(yet: a receipt shows up within a second or so).",
        )
    return flow, incident


def flow_document(flow: FlowView, incident: Incident | None = None) -> dict[str, object]:
    doc: dict[str, object] = {
        "project_id": flow.project_id, "reference": flow.reference, "mode": flow.mode, "status": flow.status,
        "event_type": flow.event_type, "effect_type": flow.effect_type,
        "received_at": flow.received_at, "deadline": flow.deadline,
    }
    if flow.applied_at is not None:
        doc["applied_at"] = flow.applied_at
    if flow.incident_id is not None:
        doc["incident_id"] = flow.incident_id
    if flow.detail is not None:
        doc["detail"] = flow.detail
    if incident is not None:
        doc["incident"] = incident_document(incident)
    return doc
