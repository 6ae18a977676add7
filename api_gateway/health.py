"""Liveness, readiness and Prometheus metrics of the gateway process."""

from __future__ import annotations

import asyncio

from aiohttp import web

from api_gateway.state import POOL, PUBLISHER
from common.observability import metrics_response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = {"kafka": await asyncio.to_thread(request.app[PUBLISHER].reachable),
              "database": await _database_ok(request)}
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "unavailable", "checks": checks},
                             status=200 if ready else 503)


async def _database_ok(request: web.Request) -> bool:
    try:
        async with request.app[POOL].connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    except Exception:
        return False
    return True


async def metrics(request: web.Request) -> web.Response:
    return metrics_response()
