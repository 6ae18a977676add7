"""The HTTP contract as an OpenAPI 3.1 document, served at ``GET /api/v1/openapi.json``.

The document is built once, from the limits and patterns the handlers check with (``topics.fields``,
``ingest_bodies``, ``operator_api.bodies``, ``http_input``, ``common.targets``), so a rule
changed in code changes here too. ``tests/test_openapi.py`` checks that it names every route and
that the running gateway keeps to it.

Where JSON Schema cannot say what the code checks (Python's ``str.isprintable``, a size in bytes,
a URL's parts), the schema states the part it can and the description says the rest; the gateway
answers ``422`` naming the field either way.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
import orjson
from aiohttp import web

from api_gateway.http_input import MAX_BATCH_BYTES, MAX_BODY_BYTES
from api_gateway.ingest import MAX_CYCLE, MAX_CYCLES_LISTED
from api_gateway.ingest_batch import MAX_ITEMS
from api_gateway.ingest_bodies import MAX_TIMEOUT_MINUTES, ReceiptBody, ResultBody
from api_gateway.operator_api.bodies import (
    DESTINATION_BODIES,
    ApiKeyCreate,
    IncidentResolve,
    OperatorInvite,
    ProjectCreate,
    ProjectUpdate,
    RepairCallbackSet,
)
from api_gateway.operator_api.callback import TEST_TIMEOUT_SECONDS, overlap_hours
from api_gateway.problems import CONTENT_TYPE as PROBLEM_JSON
from api_gateway.problems import DATABASE_RETRY_AFTER_SECONDS, KAFKA_RETRY_AFTER_SECONDS, PROBLEM_TYPE_BASE
from api_gateway.responses import limit_param
from common.callback_body import RepairCallbackBody, TestCallbackBody
from common.callback_policy import ATTEMPT_TIMEOUT_SECONDS, JITTER, Verdict
from common.config import Settings
from common.receiver import DEFAULT_TOLERANCE_SECONDS
from store.callback_deliveries import DeliveryStatus
from store.incidents import IncidentStatus, ListedStatus, ReplayOutcome
from store.notifications import NotificationStatus
from topics.declared import json_schemas
from topics.fields import (
    MAX_DETAIL_BYTES,
    MIN_TIMEOUT_SECONDS,
    IdempotencyKey,
    Mode,
    Reference,
    ResultStatus,
)
from topics.messages import FlowStatus, IncidentReason, Resolution

JSON = "application/json"
API_KEY = "apiKey"
OPERATOR_TOKEN = "operatorToken"  # noqa: S105 (the security scheme's name, not a token)
PROJECT = "/api/v1/projects/{project_id}"
INCIDENT = "/api/v1/incidents/{incident_id}"
OPERATOR = "/api/v1/operators/{operator_id}"

_LIMIT = inspect.signature(limit_param).parameters
LIMIT_DEFAULT, LIMIT_MAX = _LIMIT["default"].default, _LIMIT["maximum"].default

TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


# --- small builders -------------------------------------------------------------------------------

def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or ``null`` (the body readers treat an explicit null as a missing field)."""
    if "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON object with exactly these members: the gateway refuses unknown fields (422) and
    never sends undocumented ones."""
    return {
        "type": "object", "required": list(required), "properties": {**required, **(optional or {})},
        "additionalProperties": False, **extra,
    }


def _string(description: str | None = None, **constraints: Any) -> dict[str, Any]:
    return {"type": "string", **constraints, **({"description": description} if description else {})}


def _id(prefix: str) -> dict[str, Any]:
    return _string(f"A {prefix}_... id.", pattern=f"^{prefix}_[0-9A-Za-z]+$")


def _page(item: str) -> dict[str, Any]:
    return _object({
        "items": {"type": "array", "items": _ref(item)},
        "next_cursor": _nullable(_string("Pass as ?cursor= for the next page; null on the last page.")),
    }, description="A list, newest first.")


def _json_content(schema: dict[str, Any], media_type: str = JSON) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


# --- components -----------------------------------------------------------------------------------

def _schemas() -> dict[str, Any]:
    # The request bodies are derived from their declarations (the rules the gateway checks them with).
    bodies = json_schemas(ReceiptBody, ResultBody, ProjectCreate, ProjectUpdate, ApiKeyCreate,
                          RepairCallbackSet, *DESTINATION_BODIES.values(), IncidentResolve, OperatorInvite,
                          RepairCallbackBody, TestCallbackBody,
                          ref_template=_ref("{name}")["$ref"])
    schemas = {**_single_schemas(), **bodies}
    return {**schemas, **_batch_schemas(schemas)}


def _batch_schemas(schemas: dict[str, Any]) -> dict[str, Any]:
    """The batch endpoints' bodies and answers, made from the single endpoints' (one declaration
    of each signal's fields)."""
    key = {**msgspec.json.schema(IdempotencyKey), "description": (
        "This signal's own idempotency key: 1-255 visible ASCII characters, in the same namespace as single "
        "requests' Idempotency-Keys (the project and its mode).")}
    head = {"index": {"type": "integer", "minimum": 0, "description": "The item's place in the request."},
            "idempotency_key": _nullable(key)}
    out: dict[str, Any] = {}
    for kind, body, accepted in (("Receipt", "ReceiptBody", "ReceiptAccepted"),
                                 ("Result", "ResultBody", "ResultAccepted")):
        single = schemas[body]
        item = {**single, "required": ["idempotency_key", *single["required"]],
                "properties": {"idempotency_key": key, **single["properties"]}}
        answer = schemas[accepted]
        out[f"{kind}BatchItem"] = item
        out[f"{kind}Batch"] = _object({"items": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                                                 "items": _ref(f"{kind}BatchItem")}})
        out[f"{kind}BatchResults"] = _object({"items": {"type": "array", "items": {"oneOf": [
            {**answer, "required": ["index", "idempotency_key", "outcome", *answer["required"]],
             "properties": {**head, "outcome": {"enum": ["accepted", "replayed"]}, **answer["properties"]}},
            _object({**head, "outcome": {"const": "rejected"}, "problem": _ref("Problem")}),
        ]}, "description": "One result per item, in the request's order: accepted (Kafka has it), replayed "
                            "(its key was seen: the first answer, nothing published) or rejected (why)."}})
    return out


def _single_schemas() -> dict[str, Any]:
    # Mode, like every choice the bodies declare (a StrEnum), is a component of their schemas.
    timestamp, mode = _ref("Timestamp"), _ref("Mode")
    project_fields: dict[str, dict[str, Any]] = {
        "mode": mode,
        "timeout_minutes": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MINUTES},
        "snapshots_enabled": {"type": "boolean"},
    }
    api_key_fields = {
        "id": _id("key"), "label": _string(),
        "prefix": _string("The key's first characters.", pattern="^sk_"),
        "last_four": _string(minLength=4, maxLength=4), "created_at": timestamp,
        "last_used_at": _nullable(timestamp), "revoked_at": _nullable(timestamp),
        "revoked": {"type": "boolean"},
    }
    operator_fields = {
        "id": _id("opr"), "email": _string(), "admin": {"type": "boolean"},
        "project_ids": {"type": "array", "items": _id("prj"),
                        "description": "The projects a member sees (an admin sees all)."},
        "created_at": timestamp, "deactivated_at": _nullable(timestamp), "active": {"type": "boolean"},
    }
    operator_token_fields = {
        "id": _id("tok"), "operator_id": _id("opr"), "created_at": timestamp,
        "last_used_at": _nullable(timestamp), "revoked_at": _nullable(timestamp),
        "revoked": {"type": "boolean"},
    }
    cycle = {"type": "integer", "minimum": 1, "description": "Which cycle of the reference, from 1."}
    accepted_fields = {
        "project_id": _id("prj"), "reference": _string(), "mode": mode,
        "status": {"const": "accepted", "description": "Kafka has the signal; the flow view has the state."},
        "received_at": timestamp,
        "flow_url": _string("Where the flow it joins is read: /api/v1/flows/<reference>?mode=<mode>.",
                            pattern="^/api/v1/flows/"),
    }
    return {
        "Timestamp": _string("RFC 3339 in UTC with milliseconds and Z.", format="date-time",
                             pattern=TIMESTAMP),
        "FieldError": _object({
            "field": _string("The field at fault; empty when the body as a whole is (not a JSON object)."),
            "message": _string(),
        }),
        "Problem": _object({
            "type": _string(format="uri", pattern="^" + re.escape(PROBLEM_TYPE_BASE)),
            "title": _string(), "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": _string(),
        }, {"errors": {"type": "array", "minItems": 1, "items": _ref("FieldError")}},
            description="RFC 9457 problem details."),

        # Ingest
        "ReceiptAccepted": _object({
            **accepted_fields, "kind": {"const": "receipt"},
            "timeout_seconds": {"type": "integer", "minimum": MIN_TIMEOUT_SECONDS, "description": (
                "The receipt's timeout (its own, else the project's): its flow's deadline is received_at "
                "plus this if the receipt starts a cycle. A receipt while the reference's flow is open "
                "is counted on it and moves no deadline.")},
        }, description="Kafka has the receipt. Whether it starts a flow (a new cycle, when the "
                       "reference's flow is closed) or is recorded on the open one, flow_url shows."),
        "ResultAccepted": _object({
            **accepted_fields, "kind": {"const": "result"}, "result": _string(enum=list(ResultStatus)),
        }, description="Kafka has the result; it joins the reference's open flow (flow_url shows it)."),
        "FlowCycle": _object({
            "cycle": cycle, "status": _string(enum=[s.value for s in FlowStatus]), "received_at": timestamp,
            "deadline": timestamp,
        }, {"incident_id": _id("inc")}, description="One cycle of the reference."),
        "Flow": _object({
            "project_id": _id("prj"), "reference": _string(), "mode": mode, "cycle": cycle,
            "status": _string(enum=[s.value for s in FlowStatus]), "event_type": _string(),
            "effect_type": _string(), "received_at": timestamp, "deadline": timestamp,
            "receipts": {"type": "integer", "minimum": 1, "description": (
                "Receipts recorded on this cycle; a repeat while it is open moves nothing else.")},
            "last_receipt_at": _ref("Timestamp"),
            "cycles": {"type": "array", "items": _ref("FlowCycle"), "maxItems": MAX_CYCLES_LISTED,
                       "description": f"The reference's cycles in this mode, newest first (at most "
                                      f"{MAX_CYCLES_LISTED}), this one among them."},
        }, {"applied_at": timestamp, "incident_id": _id("inc"),
            "incident": {**_ref("Incident"), "description": (
                "The incident `incident_id` names, once the incidents sink recorded it: it reaches the "
                "read model from its own topic, so it may follow the status by a moment.")},
            "detail": _ref("FailureDetail")},
            description="One cycle of a reference in one mode. A receipt for a reference whose flow is "
                        "closed (applied or resolved) starts the next cycle, with its own deadline, incident "
                        "and history; test and live flows of a reference never join. Closed cycles are "
                        "forgotten after the retention period; a receipt after that starts at cycle 1."),
        "FailureDetail": _string(f"What the app said of its failed result (the result's detail, at most "
                                 f"{MAX_DETAIL_BYTES} bytes; never a payload). Present once a failed result "
                                 "made the incident a failed outcome."),
        "TimelineEntry": _object({
            "occurred_at": timestamp,
            "action": _string("flow.<status>, flow.receipt_repeated, incident.*, callback.*, alert.*"),
            "actor": _string(), "target": _string("The flow's reference or its incident's id."),
        }, {
            "status": _string(enum=[s.value for s in FlowStatus]),
            "previous_status": _nullable(_string(enum=[s.value for s in FlowStatus])),
            "cause": _string("What moved the flow: receipt, result_succeeded, timeout, failed_outcome, "
                             "operator_resolved."),
            "receipts": {"type": "integer", "minimum": 1,
                         "description": "flow.receipt_repeated: the receipts recorded on the cycle now."},
            "last_receipt_at": _ref("Timestamp"),
            "data": {"type": "object", "description": "The audit entry's data (not for a transition or a "
                                                      "repeated receipt)."},
        }, description="One audit log entry about the flow's cycle or its incident."),
        "FlowTimeline": {"allOf": [_ref("Flow"), {"type": "object", "required": ["timeline"], "properties": {
            "timeline": {"type": "array", "items": _ref("TimelineEntry"),
                         "description": "Oldest first: this cycle's transitions and repeated receipts, "
                                        "operator actions on its incident, repair callback attempts, "
                                        "alert sends."}}}],
                         "unevaluatedProperties": False},

        # Projects
        "Project": _object({
            "id": _id("prj"), "name": _string(), **project_fields,
            "repair_callback_url": _nullable(_string()), "created_at": timestamp,
        }),
        "ProjectPage": _page("Project"),

        # API keys
        "ApiKey": _object(api_key_fields),
        "ApiKeyCreated": _object({
            **api_key_fields,
            "key": _nullable(_string("The key (sk_...), shown this once; null on a replay.", pattern="^sk_")),
        }, {"key_redacted": {"const": True, "description": "Present on a replay, which never shows it."}}),
        "ApiKeyPage": _page("ApiKey"),

        # Repair callback
        "RepairCallback": _object({
            "url": _nullable(_string()),
            "secrets": {"type": "array", "description": "Signing secrets in use (two during a rotation).",
                        "items": _object({"created_at": timestamp, "retires_at": _nullable(timestamp)})},
        }),
        "RepairCallbackSecret": _object({
            "url": _string(),
            "signing_secret": _nullable(_string("whsec_ + base64, shown this once; null on a replay.",
                                                pattern="^whsec_[A-Za-z0-9+/]+={0,2}$")),
        }, {"signing_secret_redacted": {"const": True, "description": "Present on a replay."}}),
        "RepairCallbackTested": _object({
            "url": _string("Where the test went: the project's callback URL."),
            "replay_id": _string("The test's webhook-id, rpl_test_ + hex: never a real replay's id.",
                                 pattern="^rpl_test_[0-9a-f]+$"),
            "sent_at": timestamp,
            "http_status": _nullable({"type": "integer", "description": "The receiver's answer; null when "
                                                                        "none came."}),
            "latency_ms": {"type": "integer", "minimum": 0, "description": "From sending to the answer, or "
                                                                          "to giving up."},
            "error": _nullable(_string("Why no answer came: refused connection, a non-public address, "
                                       f"no answer within {TEST_TIMEOUT_SECONDS:g} s.")),
            "verdict": _string("What the callbacks sink would make of this answer to a repair: delivered "
                               "(2xx), retry (no answer, 408, 429, 5xx) or fail (any other, redirects "
                               "included).", enum=[v.value for v in Verdict]),
        }),

        # Alert destinations
        "AlertDestinationCreate": {
            "oneOf": [_ref(body.__name__) for body in DESTINATION_BODIES.values()],
            "discriminator": {"propertyName": "type", "mapping": {
                kind: _ref(body.__name__)["$ref"] for kind, body in DESTINATION_BODIES.items()}},
        },
        "AlertDestination": _object({
            "id": _id("dst"), "type": _string(enum=list(DESTINATION_BODIES)), "target": _string(),
            "created_at": timestamp,
            "last_failure": _nullable(_string("Why the last alert to it was refused for good (Slack 404/410, "
                                              "SMTP 5xx); null once an alert is accepted again.")),
            "failed_at": _nullable(timestamp),
        }),
        "AlertDestinationPage": _page("AlertDestination"),
        "AlertDestinationTested": _object({
            "outcome": {"const": "sent", "description": "The channel accepted the test alert."},
            "destination": _ref("AlertDestination"),
        }),

        # Audit log
        "AuditEntry": _object({
            "id": _id("aud"), "seq": {"type": "integer", "minimum": 1}, "actor": _string(),
            "action": _string(), "target": _string(), "data": {"type": "object"},
            "source_address": _nullable(_string()), "occurred_at": timestamp,
            "prev_hash": _string("The hash of the project's previous entry (64 zeros for the first).",
                                 pattern="^[0-9a-f]{64}$"),
            "hash": _string("SHA-256 (hex) over this entry's canonical JSON and prev_hash; "
                            "`sendpromptly audit verify` recomputes the chain.", pattern="^[0-9a-f]{64}$"),
        }),
        "AuditEntryPage": _page("AuditEntry"),

        # Incidents
        "CallbackAttempt": _object({
            "attempt": {"type": "integer", "minimum": 1}, "attempted_at": timestamp,
        }, {
            "finished_at": timestamp,
            "http_status": {"type": "integer", "description": "Absent when no answer came."},
            "latency_ms": {"type": "integer", "minimum": 0},
            "error": _string("Why no answer came: a network error, a timeout, or 'no outcome recorded: "
                             "...' when the callbacks sink stopped during the attempt (interrupted; "
                             "the receiver may have got the request, and gets the next attempt)."),
        }, description="One repair callback attempt, recorded before its request is sent. Without "
                       "finished_at it is under way: no outcome is recorded yet."),
        "Replay": _object({
            "replay_id": _id("rpl"), "requested_by": _string("Who asked: operator:<operator id>."),
            "requested_at": timestamp,
            "attempts": {"type": "integer", "minimum": 0, "description": "Repair callback attempts so far."},
            "callback_attempts": {"type": "array", "items": _ref("CallbackAttempt"),
                                  "description": "Every repair callback attempt, oldest first."},
        }, {"outcome": _string(enum=list(ReplayOutcome)),
            "delivery_status": _string("The repair callback's delivery; absent until the callbacks sink "
                                       "has taken the request.",
                                       enum=list(DeliveryStatus)),
            "next_attempt_at": timestamp}),
        "AlertSend": _object({"attempt": {"type": "integer", "minimum": 1}, "attempted_at": timestamp}, {
            "finished_at": timestamp, "outcome": _string(enum=["sent", "failed"]),
            "error": _string("Why the channel refused it, or 'no outcome recorded: ...' (interrupted)."),
        }, description="One send of an alert, recorded before it is made; without finished_at it is under "
                       "way."),
        "Alert": _object({
            "destination_id": _id("dst"), "destination_type": _string(enum=list(DESTINATION_BODIES)),
            "event": _string(enum=["opened", "resolved", "callback_exhausted"]),
            "status": _string(enum=list(NotificationStatus)),
            "attempts": {"type": "integer", "minimum": 0}, "created_at": timestamp,
            "sends": {"type": "array", "items": _ref("AlertSend"), "description": "Oldest first."},
        }, {"replay_id": _id("rpl"), "last_error": _string()},
            description="An alert about the incident to one destination (never its target or text)."),
        "Incident": _object({
            "id": _id("inc"), "project_id": _id("prj"), "reference": _string(), "mode": mode,
            "reason": _string(enum=list(IncidentReason)), "status": _string(enum=list(IncidentStatus)),
            "opened_at": timestamp, "deadline": timestamp,
            "replays": {"type": "array", "items": _ref("Replay"), "description": "Oldest first."},
            "alerts": {"type": "array", "items": _ref("Alert"), "description": "Oldest first."},
        }, {"acknowledged_at": timestamp, "resolved_at": timestamp,
            "resolution": _string(enum=list(Resolution)), "detail": _ref("FailureDetail")}),
        "IncidentPage": _page("Incident"),
        "ReplayRequested": _object({"replay_id": _id("rpl")}),

        # Operators (admins only)
        "Operator": _object(operator_fields),
        "OperatorPage": _page("Operator"),
        "OperatorInvited": _object({
            **operator_fields, "token_id": _id("tok"),
            "token": _nullable(_string("Their personal token (op_...), shown this once; null on a replay.",
                                       pattern="^op_")),
            "password": _nullable(_string("Their console password, shown this once; null on a replay.")),
        }, {"secrets_redacted": {"const": True, "description": "Present on a replay, which shows neither."}}),
        "OperatorToken": _object(operator_token_fields),
        "OperatorTokenIssued": _object({
            **operator_token_fields,
            "token": _nullable(_string("The token (op_...), shown this once; null on a replay.",
                                       pattern="^op_")),
        }, {"token_redacted": {"const": True, "description": "Present on a replay, which never shows it."}}),

        # Operations
        "Health": _object({"status": _string(enum=["ok"])}),
        "Readiness": _object({
            "status": _string(enum=["ready", "unavailable"]),
            "checks": _object({"kafka": {"type": "boolean"}, "database": {"type": "boolean"}}),
        }),
    }


def _parameters() -> dict[str, Any]:
    def path(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "description": description,
                "schema": _string(minLength=1)}

    return {
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": True,
            "description": "Unique per intended operation; reuse it to retry. Same key and body within 24 h: "
                           "the first answer again (Idempotent-Replayed: true). Same key, other body: 422. "
                           "Same key while the first is in flight: 409. Send exactly one: two are a 400. "
                           "Ingest keys are the project's in its current mode: test and live never share "
                           "one; operator keys are the operator's.",
            "schema": msgspec.json.schema(IdempotencyKey),
        },
        "ProjectId": path("project_id", "A project id (prj_...)."),
        "KeyId": path("key_id", "An API key id (key_...)."),
        "DestinationId": path("destination_id", "An alert destination id (dst_...)."),
        "FlowReference": path("reference", "The flow's reference, as sent in its receipt."),
        "IncidentId": path("incident_id", "An incident id (inc_...)."),
        "OperatorId": path("operator_id", "An operator id (opr_...)."),
        "TokenId": path("token_id", "An operator token id (tok_...)."),
        "FlowMode": {"name": "mode", "in": "query", "required": False,
                     "description": "The test or the live flow of the reference; absent: the project's "
                                    "current mode.",
                     "schema": _string(enum=list(Mode))},
        "FlowCycle": {"name": "cycle", "in": "query", "required": False,
                      "description": "Which cycle of the reference; absent: the latest.",
                      "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CYCLE}},
        "IncidentStatus": {"name": "status", "in": "query", "required": False,
                           "description": "Only open incidents (acknowledged or not), only open ones "
                                          "someone acknowledged, or only resolved ones; absent for all.",
                           "schema": _string(enum=list(ListedStatus))},
        "IncidentMode": {"name": "mode", "in": "query", "required": False,
                         "description": "Only test, or only live, incidents; absent for both.",
                         "schema": _string(enum=list(Mode))},
        "IncidentReason": {"name": "reason", "in": "query", "required": False,
                           "description": "Only timeouts, or only failed outcomes; absent for both.",
                           "schema": _string(enum=list(IncidentReason))},
        "IncidentReference": {"name": "reference", "in": "query", "required": False,
                              "description": "Only the incidents of this flow reference (every cycle).",
                              "schema": msgspec.json.schema(Reference)},
        "Cursor": {"name": "cursor", "in": "query", "required": False,
                   "description": "next_cursor of the previous page; absent or empty for the first page.",
                   "schema": _string()},
        "Limit": {"name": "limit", "in": "query", "required": False, "description": "Items per page.",
                  "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX,
                             "default": LIMIT_DEFAULT}},
    }


def _headers() -> dict[str, Any]:
    return {
        "IdempotentReplayed": {
            "description": "true when this is the stored answer to an earlier request with the same "
                           "Idempotency-Key and body.",
            "schema": _string(enum=["true"])},
        "RetryAfter": {"description": "Seconds to wait before retrying (with the same Idempotency-Key).",
                       "schema": {"type": "integer", "minimum": 0}},
        "WWWAuthenticate": {"required": True, "schema": _string(pattern="^Bearer ")},
    }


_REPLAYED = {"Idempotent-Replayed": _ref("IdempotentReplayed", "headers")}
_RETRY_AFTER = {"Retry-After": _ref("RetryAfter", "headers")}

# Status -> (component name, description, headers). The action's own client errors (404, 409, 422)
# are stored with its Idempotency-Key and replayed like its successes.
_PROBLEMS: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: ("BadRequest", "Malformed JSON, a missing, repeated or invalid Idempotency-Key, an invalid cursor, "
                        "limit, filter or flow mode or cycle, or a query parameter the list or lookup does "
                        "not take (unknown-query-parameter: a filter is never silently ignored).", {}),
    401: ("Unauthorized", "No credential, or not a valid one for this route.",
          {"WWW-Authenticate": _ref("WWWAuthenticate", "headers")}),
    403: ("Forbidden", "Only an admin manages operators.", {}),
    404: ("NotFound", "No such resource that you can see.", _REPLAYED),
    409: ("Conflict", "A request with this Idempotency-Key is still in flight (with Retry-After), or the "
                      "state does not allow it (live-mode prerequisites: to go live, and for as long as "
                      "the project is live, which refuses revoking its last live key, removing its last "
                      "alert destination, or an http callback or Slack webhook; no callback to rotate or "
                      "to reprocess with, a resolved incident).",
          {**_RETRY_AFTER, **_REPLAYED}),
    413: ("PayloadTooLarge",
          f"The body is over its limit: {MAX_BODY_BYTES} bytes, {MAX_BATCH_BYTES} for a batch of signals.",
          {}),
    415: ("UnsupportedMediaType", "The body is not sent as Content-Type: application/json.", {}),
    422: ("UnprocessableContent", "Invalid fields (each named in errors), or an Idempotency-Key reused with "
                                  "another request.", _REPLAYED),
    502: ("BadGateway", "The alert channel (SMTP server, Slack) did not accept the test alert; the detail "
                        "says why. Nothing is stored under the Idempotency-Key, so a retry sends again.", {}),
    503: ("ServiceUnavailable", "Kafka did not acknowledge the write (kafka-unavailable, Retry-After: "
                                f"{KAFKA_RETRY_AFTER_SECONDS}) or the database was unavailable for a moment "
                                f"(database-unavailable, Retry-After: {DATABASE_RETRY_AFTER_SECONDS}): "
                                "the request was not answered. Retry with the same Idempotency-Key.",
          {"Retry-After": {**_headers()["RetryAfter"], "required": True}}),
}


def _responses() -> dict[str, Any]:
    out = {}
    for name, description, headers in _PROBLEMS.values():
        response: dict[str, Any] = {"description": description,
                                    "content": _json_content(_ref("Problem"), PROBLEM_JSON)}
        if headers:
            response["headers"] = headers
        out[name] = response
    return out


# --- operations -----------------------------------------------------------------------------------

def _problem_responses(*codes: int) -> dict[str, Any]:
    return {str(code): _ref(_PROBLEMS[code][0], "responses") for code in sorted(set(codes))}


def _success(status: int, description: str, schema: str, *, replayable: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json_content(_ref(schema))}
    if replayable:
        response["headers"] = _REPLAYED
    return {str(status): response}


def _operation(operation_id: str, summary: str, tag: str, security: str | None, responses: dict[str, Any], *,
               parameters: tuple[str, ...] = (), body: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id, "summary": summary, "tags": [tag],
        "security": [{security: []}] if security else [], "responses": responses,
    }
    if parameters:
        operation["parameters"] = [_ref(name, "parameters") for name in parameters]
    if body:
        operation["requestBody"] = {"required": True, "content": _json_content(_ref(body))}
    return operation


@dataclass(frozen=True)
class _Group:
    """Operations under one tag and one credential."""

    tag: str
    security: str

    def read(self, operation_id: str, summary: str, schema: str, *problems: int,
             parameters: tuple[str, ...] = ()) -> dict[str, Any]:
        # Every operation reads the database (credentials at least), which may be away: 503.
        responses = {**_success(200, "OK", schema), **_problem_responses(401, 503, *problems)}
        return _operation(operation_id, summary, self.tag, self.security, responses, parameters=parameters)

    def mutating(self, operation_id: str, summary: str, answer: tuple[int, str], *problems: int,
                 body: str | None = None) -> dict[str, Any]:
        """A POST, PUT, PATCH or DELETE: Idempotency-Key required, answers replayable, and the errors
        every write can meet (415 only where there is a body to read)."""
        status, schema = answer
        codes = (400, 401, 409, 413, 422, 503, *problems, *((415,) if body else ()))
        responses = {**_success(status, summary, schema, replayable=True), **_problem_responses(*codes)}
        return _operation(operation_id, summary, self.tag, self.security, responses,
                          parameters=("IdempotencyKey",), body=body)


def _in_path(*names: str, **operations: dict[str, Any]) -> dict[str, Any]:
    """A path item whose operations share path parameters."""
    return {"parameters": [_ref(name, "parameters") for name in names], **operations}


def _public(operation_id: str, summary: str, status: int, description: str, content: dict[str, Any],
            *more: tuple[int, str, dict[str, Any]]) -> dict[str, Any]:
    responses = {str(code): {"description": text, "content": body}
                 for code, text, body in [(status, description, content), *more]}
    return {"get": _operation(operation_id, summary, "operations", None, responses)}


def _paths() -> dict[str, Any]:
    ingest = _Group("ingest", API_KEY)
    projects = _Group("projects", OPERATOR_TOKEN)
    keys = _Group("api-keys", OPERATOR_TOKEN)
    callback = _Group("repair-callback", OPERATOR_TOKEN)
    destinations = _Group("alert-destinations", OPERATOR_TOKEN)
    audit = _Group("audit-log", OPERATOR_TOKEN)
    incidents = _Group("incidents", OPERATOR_TOKEN)
    flows = _Group("flows", OPERATOR_TOKEN)
    admin = _Group("operators", OPERATOR_TOKEN)
    paging = ("Cursor", "Limit")
    flow_query = ("FlowMode", "FlowCycle")
    readiness = _json_content(_ref("Readiness"))
    return {
        "/api/v1/receipt": {"post": ingest.mutating(
            "postReceipt", "Accepted: Kafka has the receipt. The flow view (flow_url) shows what it did: "
            "started a cycle, or was counted on the open one.", (202, "ReceiptAccepted"),
            503, body="ReceiptBody")},
        "/api/v1/result": {"post": ingest.mutating(
            "postResult", "Accepted: Kafka has the result.", (202, "ResultAccepted"), 503,
            body="ResultBody")},
        "/api/v1/receipts/batch": {"post": ingest.mutating(
            "postReceiptBatch", f"Up to {MAX_ITEMS} receipts and {MAX_BATCH_BYTES} bytes, each with its own "
            "idempotency_key; answered once Kafka has every accepted one. 503: Kafka did not take them all; "
            "retry the same request.", (200, "ReceiptBatchResults"), 503, body="ReceiptBatch")},
        "/api/v1/results/batch": {"post": ingest.mutating(
            "postResultBatch", f"Up to {MAX_ITEMS} results and {MAX_BATCH_BYTES} bytes, each with its own "
            "idempotency_key; answered once Kafka has every accepted one. 503: Kafka did not take them all; "
            "retry the same request.", (200, "ResultBatchResults"), 503, body="ResultBatch")},
        "/api/v1/flows/{reference}": _in_path("FlowReference", get=ingest.read(
            "getFlow", "A flow's state (one cycle of the reference in one mode, the latest unless ?cycle= "
            "says), its incident, if any, and the reference's cycles; the truth the 202 does not state "
            "(a receipt shows up within about a second).", "Flow", 400, 404, parameters=flow_query)),

        "/api/v1/projects": {
            "post": projects.mutating("createProject", "Created, in test mode; you become a member.",
                                      (201, "Project"), body="ProjectCreate"),
            "get": projects.read("listProjects", "The projects you can see, newest first.", "ProjectPage",
                                 400, parameters=paging),
        },
        PROJECT: _in_path(
            "ProjectId",
            get=projects.read("getProject", "A project.", "Project", 404),
            patch=projects.mutating("updateProject", "Updated.", (200, "Project"), 404, body="ProjectUpdate"),
        ),
        PROJECT + "/keys": _in_path(
            "ProjectId",
            post=keys.mutating("createApiKey", "Created; the only answer that shows the key.",
                               (201, "ApiKeyCreated"), 404, body="ApiKeyCreate"),
            get=keys.read("listApiKeys", "The project's API keys, live and revoked, newest first.",
                          "ApiKeyPage", 400, 404, parameters=paging),
        ),
        PROJECT + "/keys/{key_id}/revoke": _in_path(
            "ProjectId", "KeyId",
            post=keys.mutating("revokeApiKey", "Revoked: refused everywhere within 5 s. Revoking again "
                               "changes nothing.", (200, "ApiKey"), 404),
        ),
        PROJECT + "/repair-callback": _in_path(
            "ProjectId",
            put=callback.mutating("setRepairCallback", "Set, with a new signing secret shown this once; the "
                                  "previous secret still signs for 24 h, as in a rotation.",
                                  (200, "RepairCallbackSecret"), 404, body="RepairCallbackSet"),
            get=callback.read("getRepairCallback", "The callback URL, and when its secrets were made.",
                              "RepairCallback", 404),
        ),
        PROJECT + "/repair-callback/rotate-secret": _in_path(
            "ProjectId",
            post=callback.mutating("rotateRepairCallbackSecret", "Rotated: the new secret, shown this once; "
                                   "the old one still signs for 24 h.", (200, "RepairCallbackSecret"), 404),
        ),
        PROJECT + "/repair-callback/test": _in_path(
            "ProjectId",
            post=callback.mutating(
                "testRepairCallback", "Sent one test request to the callback now, signed like a repair "
                "(same headers and secrets, through the same address checks) with a body that says "
                "\"test\": true and names no flow; audited as callback.tested. 200 whatever the receiver "
                "did: its status and latency, or why no answer came (never a 502: the receiver failing is "
                "what the test reports). A retry with the same Idempotency-Key shows the stored answer; "
                "a new key sends again. 409 without a callback URL.", (200, "RepairCallbackTested"), 404),
        ),
        PROJECT + "/alert-destinations": _in_path(
            "ProjectId",
            post=destinations.mutating("createAlertDestination", "Added.", (201, "AlertDestination"), 404,
                                       body="AlertDestinationCreate"),
            get=destinations.read("listAlertDestinations", "The project's alert destinations, newest first.",
                                  "AlertDestinationPage", 400, 404, parameters=paging),
        ),
        PROJECT + "/alert-destinations/{destination_id}": _in_path(
            "ProjectId", "DestinationId",
            delete=destinations.mutating("deleteAlertDestination", "Removed; the answer is what was removed.",
                                         (200, "AlertDestination"), 404),
        ),
        PROJECT + "/alert-destinations/{destination_id}/test": _in_path(
            "ProjectId", "DestinationId",
            post=destinations.mutating("testAlertDestination", "Sent a test alert now; audited as "
                                       "destination.tested.", (200, "AlertDestinationTested"), 404, 502),
        ),
        PROJECT + "/audit-log": _in_path(
            "ProjectId",
            get=audit.read("listAuditLog", "The project's audit log (operator actions, flow transitions, "
                           "callback attempts), newest first; appended within seconds of the event, each "
                           "entry hash-chained to the one before.", "AuditEntryPage",
                           400, 404, parameters=paging),
        ),
        PROJECT + "/incidents": _in_path(
            "ProjectId",
            get=incidents.read("listIncidents", "The project's incidents, newest first.", "IncidentPage",
                               400, 404, parameters=("IncidentStatus", "IncidentMode", "IncidentReason",
                                                     "IncidentReference", *paging)),
        ),
        PROJECT + "/flows/{reference}": _in_path(
            "ProjectId", "FlowReference",
            get=flows.read("getProjectFlow", "An operator's flow lookup: the flow (one cycle, as getFlow), "
                           "its incident, the reference's cycles and the cycle's timeline.", "FlowTimeline",
                           400, 404, parameters=flow_query)),
        INCIDENT: _in_path(
            "IncidentId", get=incidents.read("getIncident", "An incident: its failure's detail, its replays "
                                             "with every callback attempt, its alerts with every send.",
                                             "Incident", 404)),
        INCIDENT + "/acknowledge": _in_path(
            "IncidentId",
            post=incidents.mutating("acknowledgeIncident", "Accepted: Kafka has the acknowledgement. "
                                    "Acknowledging again changes nothing.", (202, "Incident"), 404, 503),
        ),
        INCIDENT + "/resolve": _in_path(
            "IncidentId",
            post=incidents.mutating("resolveIncident", "Accepted: Kafka has the manual resolution.",
                                    (202, "Incident"), 404, 503, body="IncidentResolve"),
        ),
        INCIDENT + "/reprocess": _in_path(
            "IncidentId",
            post=incidents.mutating("reprocessIncident", "Accepted: Kafka has the repair request; the "
                                    "project's repair callback will be called with this replay_id.",
                                    (202, "ReplayRequested"), 404, 503),
        ),

        "/api/v1/operators": {
            "post": admin.mutating("inviteOperator", "Invited: the only answer that shows their token and "
                                   "console password. Audited as operator.created.", (201, "OperatorInvited"),
                                   403, 404, body="OperatorInvite"),
            "get": admin.read("listOperators", "Every operator, removed ones too, newest first.",
                              "OperatorPage", 400, 403, parameters=paging),
        },
        OPERATOR: _in_path("OperatorId", get=admin.read("getOperator", "An operator.", "Operator", 403, 404)),
        OPERATOR + "/deactivate": _in_path(
            "OperatorId",
            post=admin.mutating("deactivateOperator", "Removed: their tokens are revoked and refused within "
                                "2 s. Removing again changes nothing; you cannot remove yourself.",
                                (200, "Operator"), 403, 404),
        ),
        OPERATOR + "/tokens": _in_path(
            "OperatorId",
            post=admin.mutating("issueOperatorToken", "Issued: the only answer that shows the token.",
                                (201, "OperatorTokenIssued"), 403, 404),
        ),
        OPERATOR + "/tokens/{token_id}/revoke": _in_path(
            "OperatorId", "TokenId",
            post=admin.mutating("revokeOperatorToken", "Revoked: refused within 2 s. Revoking again changes "
                                "nothing.", (200, "OperatorToken"), 403, 404),
        ),
        PROJECT + "/members/{operator_id}": _in_path(
            "ProjectId", "OperatorId",
            put=admin.mutating("addProjectMember", "The operator is a member of the project (within 2 s "
                               "they see it).", (200, "Operator"), 403, 404),
            delete=admin.mutating("removeProjectMember", "The operator is no longer a member.",
                                  (200, "Operator"), 403, 404),
        ),

        "/healthz": _public("getHealth", "The process is up.", 200, "Up.", _json_content(_ref("Health"))),
        "/readyz": _public("getReadiness", "Kafka and PostgreSQL answer.", 200, "Ready.", readiness,
                           (503, "Not ready.", readiness)),
        "/metrics": _public("getMetrics", "Prometheus metrics.", 200, "Prometheus text format.",
                            _json_content({"type": "string"}, "text/plain")),
        "/api/v1/openapi.json": _public("getOpenApiDocument", "This document.", 200, "OpenAPI 3.1.",
                                        _json_content({"type": "object"})),
    }


@lru_cache(maxsize=1)
def _document_bytes() -> bytes:
    return orjson.dumps(_build())


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    doc: dict[str, Any] = orjson.loads(_document_bytes())
    return doc


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g} {unit}"
    return f"{seconds:g} s"


def _webhooks() -> dict[str, Any]:
    """What we send to a project's repair callback URL: a repair, and the operator's test, signed
    the same way (Standard Webhooks)."""
    headers = [
        {"name": "webhook-id", "in": "header", "required": True, "schema": _string(),
         "description": "The replay_id: the same on every attempt of one replay. Apply the effect once per "
                        "webhook-id and answer 2xx again to one you have applied."},
        {"name": "webhook-timestamp", "in": "header", "required": True, "schema": _string(pattern="^[0-9]+$"),
         "description": f"Unix seconds when this attempt was signed. Refuse one more than "
                        f"{DEFAULT_TOLERANCE_SECONDS} s from your clock."},
        {"name": "webhook-signature", "in": "header", "required": True, "schema": _string(),
         "description": "Space-separated v1,<base64> signatures, one per signing secret in use (two for "
                        f"{overlap_hours()} h after a rotation): HMAC-SHA256 of "
                        "\"{webhook-id}.{webhook-timestamp}.{raw body}\" keyed with the base64-decoded "
                        "part of your whsec_ secret. One that matches is enough."},
    ]
    schedule = ", ".join(_duration(delay) for delay in Settings.callback_retry_schedule)
    retried = (f"Retried after {schedule} (the sink's SENDPROMPTLY_CALLBACK_RETRY_SCHEDULE; each "
               f"±{JITTER:.0%}), a longer Retry-After honoured up to the longest step; then the replay is "
               "exhausted and the project's alert destinations are told.")
    responses = {
        "2XX": {"description": "Delivered: you have the replay. Whether the effect worked, your app says "
                               "with a result (replay_id set), as for the original payment."},
        "408": {"description": "Retried, as a 5XX is."}, "429": {"description": "Retried, as a 5XX is."},
        "5XX": {"description": retried + f" So is no answer within {ATTEMPT_TIMEOUT_SECONDS:g} s."},
        "default": {"description": "Any other answer, redirects included: the replay fails at once (asking "
                                   "again would not change it) and the incident shows the status."},
    }

    tested = {
        "2XX": {"description": "The test passes: the operator sees your status and latency."},
        "default": {"description": "Shown to the operator with what a repair answered so would get (a retry "
                                   "or a failure); a test itself is sent once, never retried."},
    }

    def post(operation_id: str, summary: str, body: str, answers: dict[str, Any]) -> dict[str, Any]:
        return {"post": {**_operation(operation_id, summary, "repair-callback", None, answers, body=body),
                         "parameters": headers}}

    return {
        "repairRequested": post(
            "repairRequested", "An operator reprocessed an incident: rerun the effect for the reference, "
            "once per replay_id. Verify the signature on the raw body first.", "RepairCallbackBody",
            responses),
        "repairTest": post(
            "repairTest", "The console's or the CLI's test: verify it, rerun nothing, answer 2xx.",
            "TestCallbackBody", tested),
    }


def _build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SendPromptly API", "version": "1",
            "description": (
                "Catches 'paid but not applied'. Ingest (receipts, results, flows) takes a project's "
                "API key; the operator API takes an operator's personal token. JSON in and out; errors "
                f"are RFC 9457 application/problem+json. Bodies at most {MAX_BODY_BYTES} bytes "
                f"({MAX_BATCH_BYTES} for a batch of signals). Every "
                "POST, PUT, PATCH and DELETE needs an Idempotency-Key."
            ),
        },
        "tags": [
            {"name": "ingest", "description": "Receipts and results in, flow state out (API key)."},
            {"name": "projects"}, {"name": "api-keys"}, {"name": "repair-callback"},
            {"name": "alert-destinations"}, {"name": "audit-log"}, {"name": "incidents"}, {"name": "flows"},
            {"name": "operators", "description": "Operators, their tokens and memberships (admins only)."},
            {"name": "operations",
             "description": "Health, readiness, metrics and this document; no credentials."},
        ],
        "paths": _paths(),
        "webhooks": _webhooks(),
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(),
            "headers": _headers(),
            "responses": _responses(),
            "securitySchemes": {
                API_KEY: {"type": "http", "scheme": "bearer", "bearerFormat": "sk_...",
                          "description": "A project's API key: Authorization: Bearer sk_..."},
                OPERATOR_TOKEN: {"type": "http", "scheme": "bearer", "bearerFormat": "op_...",
                                 "description": "An operator's personal token: Authorization: Bearer op_..."},
            },
        },
    }


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type=JSON)
