"""Every URL the gateway serves, in one list. Route names say who may call: ``ingest.*`` takes an
API key, ``operator.*`` an operator token (see ``api_gateway.auth``)."""

from __future__ import annotations

from aiohttp import web

from api_gateway import health, ingest, openapi
from api_gateway.operator_api import (
    audit_log,
    callback,
    destinations,
    flows,
    incidents,
    keys,
    operators,
    projects,
)

PROJECT = "/api/v1/projects/{project_id}"
INCIDENT = "/api/v1/incidents/{incident_id}"
OPERATOR = "/api/v1/operators/{operator_id}"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/receipt", ingest.post_receipt, name="ingest.receipt")
    r.add_post("/api/v1/result", ingest.post_result, name="ingest.result")
    r.add_get("/api/v1/flows/{reference}", ingest.get_flow_state, name="ingest.flow")

    r.add_post("/api/v1/projects", projects.create, name="operator.projects.create")
    r.add_get("/api/v1/projects", projects.list_, name="operator.projects.list")
    r.add_get(PROJECT, projects.read, name="operator.projects.read")
    r.add_patch(PROJECT, projects.update, name="operator.projects.update")
    r.add_post(PROJECT + "/keys", keys.create, name="operator.keys.create")
    r.add_get(PROJECT + "/keys", keys.list_, name="operator.keys.list")
    r.add_post(PROJECT + "/keys/{key_id}/revoke", keys.revoke, name="operator.keys.revoke")
    r.add_put(PROJECT + "/repair-callback", callback.put, name="operator.callback.put")
    r.add_get(PROJECT + "/repair-callback", callback.read, name="operator.callback.read")
    r.add_post(PROJECT + "/repair-callback/rotate-secret", callback.rotate_secret,
               name="operator.callback.rotate")
    r.add_post(PROJECT + "/alert-destinations", destinations.create, name="operator.destinations.create")
    r.add_get(PROJECT + "/alert-destinations", destinations.list_, name="operator.destinations.list")
    r.add_delete(PROJECT + "/alert-destinations/{destination_id}", destinations.delete,
                 name="operator.destinations.delete")
    r.add_post(PROJECT + "/alert-destinations/{destination_id}/test", destinations.send_test,
               name="operator.destinations.test")
    r.add_get(PROJECT + "/audit-log", audit_log.list_, name="operator.audit_log.list")
    r.add_get(PROJECT + "/incidents", incidents.list_, name="operator.incidents.list")
    r.add_get(PROJECT + "/flows/{reference}", flows.read, name="operator.flows.read")
    r.add_get(INCIDENT, incidents.read, name="operator.incidents.read")
    r.add_post(INCIDENT + "/acknowledge", incidents.acknowledge, name="operator.incidents.acknowledge")
    r.add_post(INCIDENT + "/resolve", incidents.resolve, name="operator.incidents.resolve")
    r.add_post(INCIDENT + "/reprocess", incidents.reprocess, name="operator.incidents.reprocess")

    r.add_get("/api/v1/operators", operators.list_, name="operator.operators.list")
    r.add_post("/api/v1/operators", operators.invite, name="operator.operators.invite")
    r.add_get(OPERATOR, operators.read, name="operator.operators.read")
    r.add_post(OPERATOR + "/deactivate", operators.deactivate, name="operator.operators.deactivate")
    r.add_post(OPERATOR + "/tokens", operators.issue_token, name="operator.operators.issue_token")
    r.add_post(OPERATOR + "/tokens/{token_id}/revoke", operators.revoke_token,
               name="operator.operators.revoke_token")
    r.add_put(PROJECT + "/members/{operator_id}", operators.add_member, name="operator.members.add")
    r.add_delete(PROJECT + "/members/{operator_id}", operators.remove_member, name="operator.members.remove")

    r.add_get("/healthz", health.healthz, name="healthz")
    r.add_get("/readyz", health.readyz, name="readyz")
    r.add_get("/metrics", health.metrics, name="metrics")
    r.add_get("/api/v1/openapi.json", openapi.serve, name="openapi")
