"""Every URL the gateway serves, in one list."""

from __future__ import annotations

from aiohttp import web

from api_gateway import health, ingest


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/receipt", ingest.post_receipt, name="ingest.receipt")
    app.router.add_post("/api/v1/result", ingest.post_result, name="ingest.result")
    app.router.add_get("/api/v1/flows/{reference}", ingest.get_flow_state, name="ingest.flow")
    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_get("/readyz", health.readyz, name="readyz")
    app.router.add_get("/metrics", health.metrics, name="metrics")
