"""The local-service scripts the fixtures and `make up` rely on: idempotent start, restart after stop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from harness.processes import free_port
from harness.services import REPO, local_kafka_env, run_script


def _status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "scripts" / "kafka.sh"), "status"],
                          env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)


@pytest.fixture
def private_kafka(tmp_path: Path):
    env = {**local_kafka_env(str(free_port()), tmp_path / "kafka"), "KAFKA_CONTROLLER_PORT": str(free_port())}
    yield env
    run_script("kafka.sh", "stop", env=env)


def _answers(port: str) -> bool:
    metadata = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10)
    return metadata.brokers != {}


def test_starting_kafka_twice_is_harmless_and_a_stopped_broker_starts_again(
        private_kafka: dict[str, str]) -> None:
    port = private_kafka["KAFKA_PORT"]
    run_script("kafka.sh", "start", env=private_kafka)
    first_pid = (Path(private_kafka["KAFKA_STATE_DIR"]) / "kafka.pid").read_text().strip()
    assert _answers(port)

    run_script("kafka.sh", "start", env=private_kafka)
    assert (Path(private_kafka["KAFKA_STATE_DIR"]) / "kafka.pid").read_text().strip() == first_pid

    run_script("kafka.sh", "stop", env=private_kafka)
    assert _status(private_kafka).returncode != 0

    run_script("kafka.sh", "start", env=private_kafka)
    assert _status(private_kafka).returncode == 0
    assert _answers(port)
