"""Ingest handlers: receipts and results in, flow state out.

A 202 says what was received, never a state or deadline: a receipt on an open cycle is recorded on
it and moves no deadline, one on a closed cycle starts the next. The flow view (``flow_url``) shows
the truth: one cycle of the reference in one mode, and the list of its cycles."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web
from prometheus_client import Counter

from api_gateway.http_input import checked, idempotency_key, json_body
from api_gateway.idempotency import Accepted, run_idempotent_publish
from api_gateway.incident_document import incident_document
from api_gateway.ingest_bodies import ReceiptBody, ResultBody, parse_receipt, parse_result
from api_gateway.metrics import child
from api_gateway.problems import Problem, kafka_unavailable
from api_gateway.publisher import PublishUnavailable
from api_gateway.responses import invalid_query, json_response, only_params
from api_gateway.state import POOL, PROJECT, PUBLISHER, SETTINGS, SNAPSHOT_KEYRING
from common.snapshots import seal
from store.db import Connection
from store.flows import CycleSummary, FlowView, get_flow, list_cycles
from store.incidents import Incident, get_incident
from store.projects import Project
from topics import RECEIPTS, RESULTS, Receipt, Result, encode, flow_key
from topics.fields import MAX_REFERENCE_CHARS, Mode, choice_of, one_of

FLOWS_PATH = "/api/v1/flows"
# The query a flow lookup takes (the API key's and the operator's alike).
FLOW_PARAMS = ("mode", "cycle")
# How many of a reference's cycles a flow document lists, newest first: enough to see a reused
# reference's recent history, bounded however often it is reused.
MAX_CYCLES_LISTED = 20
# The largest cycle number the read model holds (an integer column).
MAX_CYCLE = 2**31 - 1

SIGNALS = Counter("sendpromptly_ingest_signals_total", "Signals accepted (acknowledged by Kafka)",
                  ["kind", "mode"])


async def publish_signals(request: web.Request, kind: str, mode: str,
                          signals: Sequence[Receipt | Result]) -> list[PublishUnavailable | None]:
    """Publish ``kind`` signals of a project in ``mode`` at once and wait for Kafka's reports:
    for each, None once acknowledged, else why not."""
    topic = (RECEIPTS if kind == "receipt" else RESULTS).name(request.app[SETTINGS].topic_prefix)
    outcomes = await request.app[PUBLISHER].publish_many(
        topic, [(flow_key(signal.project_id, signal.reference), encode(signal)) for signal in signals])
    stored = outcomes.count(None)
    if stored:
        child(SIGNALS, kind, mode).inc(stored)
    return outcomes


async def _publish(request: web.Request, kind: str, signal: Receipt | Result) -> None:
    [failure] = await publish_signals(request, kind, signal.mode or "", [signal])
    if failure is not None:
        raise kafka_unavailable("The signal was not stored", failure) from failure


def flow_url(reference: str, mode: str) -> str:
    """Where the flow a signal joins can be read: the truth, which a 202 cannot state (a repeated
    receipt moves no deadline; a receipt may start a new cycle)."""
    # A mode is "test" or "live": nothing in it to escape.
    return f"{FLOWS_PATH}/{quote(reference, safe='')}?mode={mode}"


def _accepted(project: Project, reference: str, kind: str, received_at: datetime,
              **more: object) -> dict[str, object]:
    return {
        "project_id": project.id, "reference": reference, "mode": project.mode, "kind": kind,
        "status": "accepted", "received_at": received_at, **more,
        "flow_url": flow_url(reference, project.mode),
    }


def scope_of(project: Project) -> str:
    """The Idempotency-Key scope of a project's signals. Per mode: a key used in test mode means
    nothing in live mode. (The metrics' scope_kind is the scope's part before "_": "prj" still.)"""
    return f"{project.id}:{project.mode}"


def receipt_signal(request: web.Request, project: Project, key: str, body: ReceiptBody,
                   received_at: datetime) -> tuple[Receipt, dict[str, object]]:
    """The receipt to publish for ``body`` and the answer that says it was accepted."""
    receipt = Receipt(
        project_id=project.id, idempotency_key=key, reference=body.reference, event_type=body.event_type,
        effect_type=body.effect_type, received_at=received_at, timeout_seconds=body.timeout_seconds,
        mode=project.mode,
        snapshot=seal(request.app[SNAPSHOT_KEYRING], project.id, body.reference, body.payload,
                      enabled=project.snapshots_enabled),
    )
    # What the receipt's cycle will be given if it starts one; a repeat on an open cycle moves nothing.
    timeout_seconds = body.timeout_seconds or project.timeout_minutes * 60
    answer = _accepted(project, body.reference, "receipt", received_at, timeout_seconds=timeout_seconds)
    return receipt, answer


def result_signal(request: web.Request, project: Project, key: str, body: ResultBody,
                  received_at: datetime) -> tuple[Result, dict[str, object]]:
    """The result to publish for ``body`` and the answer that says it was accepted."""
    result = Result(
        project_id=project.id, idempotency_key=key, reference=body.reference, status=body.status,
        received_at=received_at, replay_id=body.replay_id, detail=body.detail, mode=project.mode,
    )
    return result, _accepted(project, body.reference, "result", received_at, result=body.status)


def signal_fingerprint(kind: str, doc: dict[str, Any]) -> bytes:
    """What makes two signals the same for one idempotency key: their kind and their fields, in
    any order and spacing. So a signal sent alone and as an item of a batch is the same signal."""
    return hashlib.sha256(kind.encode() + b"\0" + orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).digest()


async def post_receipt(request: web.Request) -> web.Response:
    key = idempotency_key(request)
    doc = await json_body(request)
    body = checked(doc, parse_receipt)
    project: Project = request[PROJECT]

    def accepted_at(received_at: datetime) -> Accepted:
        receipt, answer = receipt_signal(request, project, key, body, received_at)
        return Accepted(json_response(202, answer), partial(_publish, request, "receipt", receipt))

    return await run_idempotent_publish(request, scope_of(project), accepted_at,
                                        request_print=signal_fingerprint("receipt", doc))


async def post_result(request: web.Request) -> web.Response:
    key = idempotency_key(request)
    doc = await json_body(request)
    body = checked(doc, parse_result)
    project: Project = request[PROJECT]

    def accepted_at(received_at: datetime) -> Accepted:
        result, answer = result_signal(request, project, key, body, received_at)
        return Accepted(json_response(202, answer), partial(_publish, request, "result", result))

    return await run_idempotent_publish(request, scope_of(project), accepted_at,
                                        request_print=signal_fingerprint("result", doc))


@dataclass(frozen=True)
class FlowQuery:
    """A flow lookup's query: ``?mode=`` (None: the project's current mode) and ``?cycle=``
    (None: the latest)."""

    mode: Mode | None = None
    cycle: int | None = None

    def mode_of(self, project: Project) -> Mode:
        return self.mode or project.mode


def query_mode(raw: str | None) -> Mode | None:
    """A ``?mode=`` (None when absent); 400 naming the modes when it is none of them."""
    if raw is None:
        return None
    mode = choice_of(Mode, raw)
    if mode is None:
        raise invalid_query("mode", f"must be {one_of(Mode)}")
    return mode


def flow_query(request: web.Request) -> FlowQuery:
    only_params(request, "lookup", *FLOW_PARAMS)
    for name in FLOW_PARAMS:
        if len(request.query.getall(name, [])) > 1:
            raise invalid_query(name, "must be given once")
    mode = query_mode(request.query.get("mode"))
    raw = request.query.get("cycle")
    # isdigit() alone accepts "²"; the length bound keeps int() off absurdly long strings.
    if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) <= 10
                                and 1 <= int(raw) <= MAX_CYCLE):
        raise invalid_query("cycle", f"must be a whole number from 1 to {MAX_CYCLE}")
    return FlowQuery(mode, None if raw is None else int(raw))


async def get_flow_state(request: web.Request) -> web.Response:
    query = flow_query(request)
    project: Project = request[PROJECT]
    async with request.app[POOL].connection() as conn:
        found = await find_flow(conn, project, request.match_info["reference"], query)
    return json_response(200, flow_document(found))


@dataclass(frozen=True)
class FoundFlow:
    flow: FlowView
    # The incident the flow names, if the read model has it yet.
    incident: Incident | None
    # The reference's cycles in the flow's mode, newest first (at most MAX_CYCLES_LISTED).
    cycles: list[CycleSummary]


async def find_flow(conn: Connection, project: Project, reference: str, query: FlowQuery) -> FoundFlow:
    """The project's flow of ``reference`` that ``query`` names, the incident it names and the
    reference's cycles; else a 404 problem."""
    mode = query.mode_of(project)
    flow = incident = None
    # A reference that breaks the field rules (e.g. holds a NUL) was never accepted: nothing to find.
    if reference.isprintable() and 1 <= len(reference) <= MAX_REFERENCE_CHARS:
        flow = await get_flow(conn, project.id, reference, mode=mode, cycle=query.cycle)
        # The incident the flow names, not any incident of the reference: the read model takes
        # a flow's status and its incidents from two topics, and a flow still shown `pending`
        # beside an opened incident would contradict itself.
        if flow is not None and flow.incident_id is not None:
            incident = await get_incident(conn, flow.incident_id)
    if flow is None:
        which = "" if query.cycle is None else f", cycle {query.cycle},"
        raise Problem(
            404, "flow-not-found", "Flow not found",
            f"No flow with reference {reference!r}{which} in {mode} mode in this project "
            "(yet: a receipt shows up within a second or so).",
        )
    cycles = await list_cycles(conn, project.id, mode, reference, limit=MAX_CYCLES_LISTED)
    return FoundFlow(flow, incident, cycles)


def flow_document(found: FoundFlow) -> dict[str, object]:
    flow = found.flow
    doc: dict[str, object] = {
        "project_id": flow.project_id, "reference": flow.reference, "mode": flow.mode, "cycle": flow.cycle,
        "status": flow.status, "event_type": flow.event_type, "effect_type": flow.effect_type,
        "received_at": flow.received_at, "deadline": flow.deadline, "receipts": flow.receipts,
        "last_receipt_at": flow.last_receipt_at,
    }
    if flow.applied_at is not None:
        doc["applied_at"] = flow.applied_at
    if flow.incident_id is not None:
        doc["incident_id"] = flow.incident_id
    if flow.detail is not None:
        doc["detail"] = flow.detail
    if found.incident is not None:
        doc["incident"] = incident_document(found.incident)
    doc["cycles"] = [_cycle_document(cycle) for cycle in found.cycles]
    return doc


def _cycle_document(cycle: CycleSummary) -> dict[str, object]:
    doc: dict[str, object] = {"cycle": cycle.cycle, "status": cycle.status, "received_at": cycle.received_at,
                              "deadline": cycle.deadline}
    if cycle.incident_id is not None:
        doc["incident_id"] = cycle.incident_id
    return doc
