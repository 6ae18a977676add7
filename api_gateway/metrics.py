"""HTTP request metrics: counts by route and status, latency histogram."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Histogram

REQUESTS = Counter("sendpromptly_http_requests_total", "HTTP requests answered",
                   ["route", "method", "status"])
LATENCY = Histogram(
    "sendpromptly_http_request_seconds", "HTTP request latency", ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    # The route's name, not its path, so a flow reference never becomes a label value.
    route = request.match_info.route.name or "unmatched"
    response = await handler(request)
    LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
    REQUESTS.labels(route, request.method, str(response.status)).inc()
    return response
