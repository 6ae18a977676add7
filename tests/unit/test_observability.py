"""JSON logs carry their context and nothing else; consumer metrics follow the partitions held."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import REGISTRY

from common.config import ConfigError, Settings
from common.consumer_metrics import GroupMetrics
from common.observability import JsonFormatter, bind_log_context, log_context
from topics.catalog import key_fields


def formatted(message: str, *args: object) -> dict[str, object]:
    record = logging.LogRecord("sinks.runner", logging.WARNING, __file__, 1, message, args, None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_json_line_carries_the_context_it_was_logged_in() -> None:
    with log_context(request_id="req-1"):
        bind_log_context(project_id="prj_abc")
        inside = formatted("dead-lettered %s", "x")
    outside = formatted("idle")
    assert inside["message"] == "dead-lettered x" and inside["level"] == "WARNING"
    assert (inside["request_id"], inside["project_id"]) == ("req-1", "prj_abc")
    assert "request_id" not in outside and "project_id" not in outside


def test_binding_without_an_open_context_changes_nothing() -> None:
    bind_log_context(project_id="prj_leak")
    assert "project_id" not in formatted("later")


def test_keys_name_their_project_and_reference() -> None:
    assert key_fields(b"prj_a:inv:1") == {"project_id": "prj_a", "reference": "inv:1"}
    assert key_fields(b"prj_a") == {"project_id": "prj_a"}
    assert key_fields(b"system") == {} and key_fields(None) == {}


def test_log_format_is_text_or_json() -> None:
    assert Settings.from_env({"SENDPROMPTLY_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="SENDPROMPTLY_LOG_FORMAT"):
        Settings.from_env({"SENDPROMPTLY_LOG_FORMAT": "xml"})


def sample(name: str, group: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(name, {"group": group, "topic": topic, "partition": str(partition)})


def test_a_partition_that_moved_away_is_no_longer_reported() -> None:
    metrics = GroupMetrics("unit-group")
    metrics.report({("t", 0): 5, ("t", 1): 0}, {("t", 0): 1000.0})
    assert sample("sendpromptly_consumer_lag", "unit-group", "t", 0) == 5
    assert sample("sendpromptly_consumer_last_applied_timestamp_seconds", "unit-group", "t", 0) == 1000.0
    metrics.report({("t", 1): 2}, {("t", 0): 1000.0, ("t", 1): 2000.0})
    assert sample("sendpromptly_consumer_lag", "unit-group", "t", 0) is None
    assert sample("sendpromptly_consumer_last_applied_timestamp_seconds", "unit-group", "t", 0) is None
    assert sample("sendpromptly_consumer_lag", "unit-group", "t", 1) == 2
