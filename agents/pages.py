"""The agents' web pages: liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from typing import cast

import faust
from faust.tables.manager import TableManager
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def add_pages(app: faust.App) -> None:
    """Serve /healthz, /readyz and /metrics on ``app``'s web port."""

    @app.page("/healthz")
    async def healthz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # Ready once the tables are recovered from their changelogs and no rebalance is under way.
        ready = cast(TableManager, app.tables).recovery.completed.is_set() and not app.rebalancing
        return view.json({"status": "ready" if ready else "starting"}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp refuses a charset inside content_type; Prometheus reads the bare type fine.
        return view.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.partition(";")[0])
