"""Settings from the environment: a bad value stops the process with a message naming the variable."""

from __future__ import annotations

import pytest

from sendpromptly.config import ConfigError, Settings


def test_the_agents_instance_id_is_read_and_checked() -> None:
    assert Settings.from_env({}).agents_instance_id == ""
    assert Settings.from_env({"SENDPROMPTLY_AGENTS_INSTANCE_ID": "agents-0"}).agents_instance_id == "agents-0"
    with pytest.raises(ConfigError, match="SENDPROMPTLY_AGENTS_INSTANCE_ID may hold only"):
        Settings.from_env({"SENDPROMPTLY_AGENTS_INSTANCE_ID": "agents 0"})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SENDPROMPTLY_HTTP_PORT", "http", "SENDPROMPTLY_HTTP_PORT"),
    ("SENDPROMPTLY_TOPIC_PREFIX", "a/b", "SENDPROMPTLY_TOPIC_PREFIX may hold only"),
    ("SENDPROMPTLY_ALLOW_PRIVATE_TARGETS", "maybe", "SENDPROMPTLY_ALLOW_PRIVATE_TARGETS must be"),
])
def test_a_bad_value_names_its_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})
