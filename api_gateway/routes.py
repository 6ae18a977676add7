"""Every URL the gateway serves, in one list. Route names say who may call: ``ingest.*`` takes an
API key, ``operator.*`` an operator token (see ``api_gateway.auth``), the console's ``console.*``
pages a signed-in session and its ``page.*`` pages nothing (see ``api_gateway.console.middleware``)."""

from __future__ import annotations

from aiohttp import web

from api_gateway import health, ingest, ingest_batch, openapi
from api_gateway.console import api_reference, lookups, sign_in
from api_gateway.console import callback as console_callback
from api_gateway.console import destinations as console_destinations
from api_gateway.console import incidents as console_incidents
from api_gateway.console import keys as console_keys
from api_gateway.console import projects as console_projects
from api_gateway.console.pages import STATIC_DIR
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
from common.console_paths import CONSOLE_INCIDENT

PROJECT = "/api/v1/projects/{project_id}"
INCIDENT = "/api/v1/incidents/{incident_id}"
OPERATOR = "/api/v1/operators/{operator_id}"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/receipt", ingest.post_receipt, name="ingest.receipt")
    r.add_post("/api/v1/result", ingest.post_result, name="ingest.result")
    r.add_post("/api/v1/receipts/batch", ingest_batch.post_receipts, name="ingest.receipts_batch")
    r.add_post("/api/v1/results/batch", ingest_batch.post_results, name="ingest.results_batch")
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
    r.add_post(PROJECT + "/repair-callback/test", callback.send_test, name="operator.callback.test")
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

    setup_console_routes(app)


CONSOLE_PROJECT = "/projects/{project_id}"


def setup_console_routes(app: web.Application) -> None:
    """The console's pages. Path parameters are named as the API's, so that the pages act through
    the API's own service functions on the same ids."""
    r = app.router
    r.add_get("/", sign_in.home, name="page.home")
    r.add_get("/sign-in", sign_in.form, name="page.sign_in")
    r.add_post("/sign-in", sign_in.submit, name="page.sign_in.submit")
    r.add_get("/docs", api_reference.show, name="page.docs")
    r.add_static("/static/", STATIC_DIR, name="page.static")
    r.add_post("/sign-out", sign_in.submit_sign_out, name="console.sign_out")

    r.add_get("/projects", console_projects.list_, name="console.projects")
    r.add_post("/projects", console_projects.create, name="console.projects.create")
    r.add_get(CONSOLE_PROJECT, console_projects.show, name="console.project")
    r.add_post(CONSOLE_PROJECT + "/settings", console_projects.update_settings,
               name="console.project.settings")
    r.add_post(CONSOLE_PROJECT + "/mode", console_projects.switch_mode, name="console.project.mode")
    r.add_get(CONSOLE_PROJECT + "/keys", console_keys.show, name="console.keys")
    r.add_post(CONSOLE_PROJECT + "/keys", console_keys.create, name="console.keys.create")
    r.add_post(CONSOLE_PROJECT + "/keys/{key_id}/revoke", console_keys.revoke, name="console.keys.revoke")
    r.add_get(CONSOLE_PROJECT + "/callback", console_callback.show, name="console.callback")
    r.add_post(CONSOLE_PROJECT + "/callback", console_callback.set_url, name="console.callback.set")
    r.add_post(CONSOLE_PROJECT + "/callback/rotate", console_callback.rotate, name="console.callback.rotate")
    r.add_post(CONSOLE_PROJECT + "/callback/test", console_callback.send_test, name="console.callback.test")
    r.add_get(CONSOLE_PROJECT + "/alerts", console_destinations.show, name="console.destinations")
    r.add_post(CONSOLE_PROJECT + "/alerts", console_destinations.add, name="console.destinations.add")
    r.add_post(CONSOLE_PROJECT + "/alerts/{destination_id}/test", console_destinations.send_test,
               name="console.destinations.test")
    r.add_post(CONSOLE_PROJECT + "/alerts/{destination_id}/remove", console_destinations.remove,
               name="console.destinations.remove")
    r.add_get(CONSOLE_PROJECT + "/incidents", console_incidents.list_, name="console.incidents")
    r.add_get(CONSOLE_PROJECT + "/flows", lookups.flow, name="console.flows")
    r.add_get(CONSOLE_PROJECT + "/audit-log", lookups.audit, name="console.audit_log")
    r.add_get(CONSOLE_INCIDENT, console_incidents.show, name="console.incident")
    r.add_post(CONSOLE_INCIDENT + "/acknowledge", console_incidents.acknowledge,
               name="console.incident.acknowledge")
    r.add_post(CONSOLE_INCIDENT + "/resolve", console_incidents.resolve, name="console.incident.resolve")
    r.add_post(CONSOLE_INCIDENT + "/reprocess", console_incidents.reprocess,
               name="console.incident.reprocess")
