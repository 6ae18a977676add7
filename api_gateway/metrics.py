"""HTTP request metrics: requests answered by route, method and status, and a latency histogram by
route and method.

Each request is recorded once, into plain per-series counters, and a scrape turns them into both
metric families. prometheus-client's own Counter and Histogram cost two observations per request,
each with a label lookup and a lock, a few microseconds on the ingest hot path; the gateway answers
every request on its event loop's one thread, and scrapes run there too, so no lock is needed.
"""

from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.utils import floatToGoString

# The client library's own rendering of a bucket bound (as Go prints floats), which it leaves untyped.
_go_float: Callable[[float], str] = floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class HttpRequests:
    """``sendpromptly_http_requests_total`` and ``sendpromptly_http_request_seconds``, from one
    record per request."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self._bounds = buckets
        # (route, method, status) -> count per bucket (the last one +Inf), then the sum of seconds.
        self._series: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self._series.get((route, method, status))
        if series is None:
            series = self._series[(route, method, status)] = [0] * (len(self._bounds) + 2)
        series[bisect_left(self._bounds, seconds)] += 1  # the first bucket whose bound is >= seconds
        series[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("sendpromptly_http_requests", "HTTP requests answered",
                                       labels=["route", "method", "status"])
        per_route: dict[tuple[str, str], list[float]] = {}
        for (route, method, status), series in list(self._series.items()):
            requests.add_metric([route, method, str(status)], sum(series[:-1]))
            merged = per_route.setdefault((route, method), [0] * len(series))
            for index, value in enumerate(series):
                merged[index] += value
        latency = HistogramMetricFamily("sendpromptly_http_request_seconds", "HTTP request latency",
                                        labels=["route", "method"])
        for labels, series in per_route.items():
            latency.add_metric(list(labels), self._cumulative(series[:-1]), series[-1])
        yield requests
        yield latency

    def _cumulative(self, counts: list[float]) -> list[tuple[str, float]]:
        bounds = [*(_go_float(bound) for bound in self._bounds), "+Inf"]
        running = 0.0
        buckets = []
        for bound, count in zip(bounds, counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


HTTP_REQUESTS = HttpRequests()
REGISTRY.register(HTTP_REQUESTS)

M = TypeVar("M", bound=MetricWrapperBase)


@functools.cache
def child(metric: M, *labels: str) -> M:
    """``metric.labels(*labels)``, looked up once: labels() takes a lock and builds its key on
    every call, and a series, once made, never changes."""
    return metric.labels(*labels)


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    # The route's name, not its path, so a flow reference never becomes a label value.
    route = request.match_info.route.name or "unmatched"
    response = await handler(request)
    HTTP_REQUESTS.observe(route, request.method, response.status, time.perf_counter() - started)
    return response
