"""Settings: defaults, overrides, secrets from files, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import ConfigError, Settings


def test_defaults_are_the_local_stacks() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.http_port == 8080
    assert settings.allow_private_targets is False
    assert settings.agents_instance_id == ""  # dynamic group membership


def test_variables_override_defaults() -> None:
    settings = Settings.from_env({"SENDPROMPTLY_HTTP_PORT": "9000",
                                  "SENDPROMPTLY_ALLOW_PRIVATE_TARGETS": "1"})
    assert settings.http_port == 9000 and settings.allow_private_targets is True


def test_a_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "db"
    secret.write_text("postgresql://app@db/prod\n")
    assert Settings.from_env({"SENDPROMPTLY_DATABASE_URL_FILE": str(secret)}).database_url == "postgresql://app@db/prod"


@pytest.mark.parametrize(("env", "named"), [
    ({"SENDPROMPTLY_HTTP_PORT": "eighty"}, "SENDPROMPTLY_HTTP_PORT"),
    ({"SENDPROMPTLY_FLOW_PARTITIONS": "0"}, "SENDPROMPTLY_FLOW_PARTITIONS"),
    ({"SENDPROMPTLY_ALLOW_PRIVATE_TARGETS": "maybe"}, "SENDPROMPTLY_ALLOW_PRIVATE_TARGETS"),
    ({"SENDPROMPTLY_TOPIC_PREFIX": "bad prefix"}, "SENDPROMPTLY_TOPIC_PREFIX"),
    ({"SENDPROMPTLY_AGENTS_INSTANCE_ID": "agents 0"}, "SENDPROMPTLY_AGENTS_INSTANCE_ID"),
    ({"SENDPROMPTLY_DATABASE_URL_FILE": "/nonexistent/secret"}, "SENDPROMPTLY_DATABASE_URL_FILE"),
    ({"SENDPROMPTLY_ALERT_RETRY_SCHEDULE": "5,0"}, "SENDPROMPTLY_ALERT_RETRY_SCHEDULE .*item 2"),
    ({"SENDPROMPTLY_CALLBACK_RETRY_SCHEDULE": "5,soon"}, "SENDPROMPTLY_CALLBACK_RETRY_SCHEDULE"),
    ({"SENDPROMPTLY_LOG_LEVEL": "verbose"}, "SENDPROMPTLY_LOG_LEVEL must be one of DEBUG, INFO"),
    ({"SENDPROMPTLY_FLOW_RETENTION_DAYS": "0"}, "SENDPROMPTLY_FLOW_RETENTION_DAYS"),
])
def test_a_bad_value_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_values_are_read_by_their_fields_types() -> None:
    settings = Settings.from_env({"SENDPROMPTLY_HTTP_PORT": " 9000 ", "SENDPROMPTLY_LOG_LEVEL": "debug",
                                  "SENDPROMPTLY_LOG_FORMAT": "JSON", "SENDPROMPTLY_HTTP_REUSE_PORT": "on",
                                  "SENDPROMPTLY_ALERT_RETRY_SCHEDULE": "1, 2.5,60"})
    assert (settings.http_port, settings.log_level, settings.log_format) == (9000, "DEBUG", "json")
    assert settings.http_reuse_port is True and settings.alert_retry_schedule == (1.0, 2.5, 60.0)


def test_settings_made_in_code_keep_the_same_rules() -> None:
    with pytest.raises(ConfigError, match="SENDPROMPTLY_FLOW_PARTITIONS"):
        Settings(flow_partitions=0)
