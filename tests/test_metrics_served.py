"""What SREs watch is what the processes serve. On a whole stack (every process of
``sendpromptly/processes.py``) with JSON logs:

- every process answers its probe paths and serves its own metrics and no other process's;
- every consuming process reports lag and freshness for its own group, per topic and partition;
- every metric the alert rules and the dashboard name is served, and docs/metrics.md lists
  exactly the metrics served;
- every log line is one JSON object, with the project and reference where a message named them,
  and never an API key.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from harness.stack import SINK_NAMES, Stack
from sendpromptly.processes import PROCESSES, Process
from tests.support.api import Api, eventually
from tests.support.tools import REPO
from topics import RECEIPTS, flow_key

pytestmark = pytest.mark.e2e

# Each metric family, and the one process that serves it (or "consumers": the agents and every sink).
OWN_METRICS = {
    "sendpromptly_http_requests": "gateway",
    "sendpromptly_ingest_signals": "gateway",
    "sendpromptly_kafka_produce_seconds": "gateway",
    "sendpromptly_auth_failures": "gateway",
    "sendpromptly_pending_flows": "agents",
    "sendpromptly_detection_lag_seconds": "agents",
    "sendpromptly_callback_attempts": "sink-callbacks",
    "sendpromptly_callback_latency_seconds": "sink-callbacks",
    "sendpromptly_snapshot_purge_last_success_timestamp_seconds": "sink-callbacks",
    "sendpromptly_alerts_sent": "sink-alerts",
    "sendpromptly_consumer_lag": "consumers",
    "sendpromptly_consumer_last_applied_timestamp_seconds": "consumers",
    "sendpromptly_dead_letters": "consumers",
}
FRESHNESS = ("sendpromptly_consumer_lag", "sendpromptly_consumer_last_applied_timestamp_seconds")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
            "summary": ("", "_sum", "_count"), "info": ("_info",), "unknown": ("",)}


def metrics_url(stack: Stack, process: Process) -> str:
    if process.name == "gateway":
        return stack.base_url
    if process.name == "agents":
        return stack.agents_url
    return stack.sink_urls[process.args[1]]


def scrape(url: str) -> dict[str, tuple[str, list[dict[str, str]]]]:
    """Family name -> its type and the label sets of its samples (none for a family without series)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    # prometheus-client's <counter or histogram>_created series read back as families of their own.
    return {family.name: (family.type, [sample.labels for sample in family.samples])
            for family in text_string_to_metric_families(text)
            if family.name.startswith("sendpromptly_") and not family.name.endswith("_created")}


def stored_names(kinds: dict[str, str]) -> set[str]:
    """The names Prometheus stores the samples of these families under."""
    return {name + suffix for name, kind in kinds.items() for suffix in SUFFIXES[kind]}


def documented_names(kinds: dict[str, str]) -> set[str]:
    """How docs/metrics.md names each family: counters with _total, histograms by their base name."""
    return {name + ("_total" if kind == "counter" else "") for name, kind in kinds.items()}


def named_in(text: str) -> set[str]:
    return set(re.findall(r"\b(sendpromptly_[a-z0-9_]+)\b", text)) - {"sendpromptly_"}


async def test_each_process_serves_its_own_metrics_lag_freshness_and_json_logs(
        stack_factory, project, http, services, topic_prefix: str) -> None:
    stack: Stack = stack_factory(sinks=SINK_NAMES, SENDPROMPTLY_LOG_FORMAT="json")
    api = Api(http, stack.base_url, project.api_key)
    assert (await api.receipt("inv_metrics"))[0] == 202
    assert (await api.result("inv_metrics", "succeeded"))[0] == 202
    await eventually(lambda: api.flow("inv_metrics"), lambda answer: answer[1].get("status") == "applied")
    # A failed one too: its incident is what the alerts sink consumes.
    assert (await api.receipt("inv_failing"))[0] == 202
    assert (await api.result("inv_failing", "failed"))[0] == 202
    await eventually(lambda: api.flow("inv_failing"), lambda answer: answer[1].get("status") == "incident")
    # A direct producer's broken message: the agents log it, naming its project and reference.
    producer = Producer({"bootstrap.servers": services.kafka_bootstrap, "partitioner": "murmur2_random"})
    producer.produce(RECEIPTS.name(topic_prefix), key=flow_key(project.project_id, "inv_broken"),
                     value=b"{not json")
    assert producer.flush(10) == 0

    for process in PROCESSES:
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(metrics_url(stack, process) + path, timeout=5) as answer:
                assert answer.status == 200, f"{process.name} {path}"
    # A sink's readiness names its consumer and each of its loops.
    loops = {"sink-callbacks": {"callback delivery", "snapshot purge"}, "sink-alerts": {"alert delivery"}}
    for process in PROCESSES:
        if process.sink:
            with urllib.request.urlopen(metrics_url(stack, process) + "/readyz", timeout=5) as answer:
                parts = json.load(answer)["parts"]
            assert parts == {"consumer": "ready", **dict.fromkeys(loops.get(process.name, ()), "running")}

    # Lag and freshness are measured every 1-5 s: wait until each consumer has reported both.
    deadline = time.monotonic() + 60
    while True:
        scraped = {process.name: scrape(metrics_url(stack, process)) for process in PROCESSES}
        consumers = [process for process in PROCESSES if process.group]
        reported = all(scraped[p.name].get(family, ("", []))[1] for p in consumers for family in FRESHNESS)
        if reported or time.monotonic() > deadline:
            break
        time.sleep(1)

    for process in PROCESSES:
        families = scraped[process.name]
        for family, owner in OWN_METRICS.items():
            owns = owner == process.name or (owner == "consumers" and process.group is not None)
            assert (family in families) == owns, f"{process.name} {'lacks' if owns else 'serves'} {family}"
        if process.group:
            for family in FRESHNESS:
                _, series = families[family]
                assert series, f"{process.name} reports no {family}"
                assert {labels["group"] for labels in series} == {topic_prefix + process.group}
                assert all(labels["topic"].startswith(topic_prefix) and labels["partition"].isdigit()
                           for labels in series)

    kinds = {name: kind for families in scraped.values() for name, (kind, _) in families.items()}
    served = stored_names(kinds)
    watched = named_in((REPO / "deploy/prometheus/alerts.yaml").read_text()) | named_in(
        (REPO / "deploy/grafana/sendpromptly.json").read_text())
    # A histogram may be named by its base name in prose (a panel's description).
    assert watched - served - documented_names(kinds) == set(), \
        "alert rules or dashboard panels name metrics no process serves"
    documented = named_in((REPO / "docs/metrics.md").read_text())
    assert documented_names(kinds) - documented == set(), "metrics served but missing in docs/metrics.md"
    assert documented - served - documented_names(kinds) == set(), "docs/metrics.md names metrics not served"

    stack.stop()
    lines = [(process.name, line) for process in stack.processes
             for line in process.log_path.read_text().splitlines() if line.strip()]
    assert lines
    parsed = []
    for name, line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{name} logged a line that is not JSON: {line!r}")
        assert project.api_key not in line
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in parsed)
    assert any(record.get("project_id") == project.project_id and record.get("reference") == "inv_broken"
               for record in parsed), "no log line names the broken message's project and reference"
    assert datetime.fromisoformat(parsed[-1]["time"]) <= datetime.now(UTC)
