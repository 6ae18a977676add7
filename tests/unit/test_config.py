"""Settings: defaults, overrides, secrets from files, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendpromptly.config import ConfigError, Settings


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
])
def test_a_bad_value_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
