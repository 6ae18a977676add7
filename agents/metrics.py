"""What the agents tell Prometheus (served on SENDPROMPTLY_AGENTS_WEB_PORT/metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PENDING_FLOWS = Gauge("sendpromptly_pending_flows", "Pending flows whose deadline this worker watches")
INCIDENTS_OPENED = Counter("sendpromptly_incidents_opened_total", "Incidents opened", ["reason", "mode"])
INCIDENTS_RESOLVED = Counter("sendpromptly_incidents_resolved_total", "Incidents resolved",
                             ["resolution", "mode"])
DETECTION_LAG = Histogram(
    "sendpromptly_detection_lag_seconds", "From a flow's deadline to its timeout incident opening",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
JOIN_LATENCY = Histogram(
    "sendpromptly_join_latency_seconds", "From a signal's receipt at the gateway to the agents applying it",
    ["kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DUPLICATES = Counter(
    "sendpromptly_duplicate_signals_total", "Signals dropped as repeats of an idempotency key", ["kind"],
)
REDERIVED_OUTPUTS = Counter(
    "sendpromptly_agents_rederived_outputs_total",
    "Messages replayed after a crash whose flow's outputs were derived again from its stored state",
)
PROCESSING_RETRIES = Counter(
    "sendpromptly_agents_processing_retries_total",
    "Times a message was tried again after a passing failure (database, broker), by error type",
    ["error"],
)
FORWARDED = Counter(
    "sendpromptly_agents_forwarded_total",
    "Signals that arrived on the wrong partition for their key and were forwarded to the right one",
    ["topic"],
)
RECEIPTS_REPEATED = Counter(
    "sendpromptly_agents_receipts_repeated_total",
    "Receipts recorded on a flow that was still open (its deadline did not move)", ["mode"],
)
CYCLES_STARTED = Counter(
    "sendpromptly_agents_cycles_started_total",
    "Receipts for a reference whose flow was closed, which started its next cycle", ["mode"],
)
FLOWS_FORGOTTEN = Counter(
    "sendpromptly_agents_flows_forgotten_total",
    "Closed flows forgotten after the retention (state, changelog and read model)", ["mode"],
)
SKIPPED_RECORDS = Counter(
    "sendpromptly_agents_skipped_records_total",
    "Input records the consumer's fetcher skipped over (never committed past; a restart reads them again)",
    ["topic"],
)
