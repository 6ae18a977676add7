"""The gateway's per-request metrics: one record, exposed as a counter and a histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from api_gateway.metrics import HttpRequests


def _exposition(requests: HttpRequests) -> list[str]:
    registry = CollectorRegistry()
    registry.register(requests)
    return generate_latest(registry).decode().splitlines()


def test_one_record_per_request_gives_counts_by_status_and_a_histogram_by_route() -> None:
    requests = HttpRequests(buckets=(0.01, 0.1))
    requests.observe("ingest.receipt", "POST", 202, 0.005)
    requests.observe("ingest.receipt", "POST", 202, 0.01)  # on a bound: counted in that bucket
    requests.observe("ingest.receipt", "POST", 422, 0.05)
    requests.observe("ingest.receipt", "POST", 202, 3.0)

    lines = _exposition(requests)

    assert 'sendpromptly_http_requests_total{method="POST",route="ingest.receipt",status="202"} 3.0' in lines
    assert 'sendpromptly_http_requests_total{method="POST",route="ingest.receipt",status="422"} 1.0' in lines
    prefix = 'sendpromptly_http_request_seconds_bucket{le="%s",method="POST",route="ingest.receipt"} %s'
    assert prefix % ("0.01", "2.0") in lines
    assert prefix % ("0.1", "3.0") in lines
    assert prefix % ("+Inf", "4.0") in lines
    assert 'sendpromptly_http_request_seconds_count{method="POST",route="ingest.receipt"} 4.0' in lines
    assert 'sendpromptly_http_request_seconds_sum{method="POST",route="ingest.receipt"} 3.065' in lines
