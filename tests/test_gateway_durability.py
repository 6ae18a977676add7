"""No 202 is ever lost, and a 503 is never a lie: the gateway against a broker that goes away."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from harness.kafka import read_topic
from harness.processes import free_port
from harness.services import local_kafka_env, run_script
from harness.stack import lone_gateway, stack_env
from tests.conftest import ProjectKey
from tests.support.api import Api, eventually
from topics import RECEIPTS, Receipt, decode
from topics.admin import ensure_topics

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_broker(tmp_path: Path):
    """A broker of this test's own, which it may stop and start."""
    env = {**local_kafka_env(str(free_port()), tmp_path / "kafka"), "KAFKA_CONTROLLER_PORT": str(free_port())}
    run_script("kafka.sh", "start", env=env)
    yield env
    run_script("kafka.sh", "stop", env=env)


@pytest.fixture
def gateway_on_private_broker(private_broker: dict[str, str], database_url: str, tmp_path: Path):
    bootstrap = f"127.0.0.1:{private_broker['KAFKA_PORT']}"
    prefix = "durability."
    ensure_topics(bootstrap, prefix, 2)
    env = stack_env(kafka_bootstrap=bootstrap, database_url=database_url, topic_prefix=prefix,
                    workdir=tmp_path, extra={"SENDPROMPTLY_PRODUCE_TIMEOUT_MS": "2000"})
    with lone_gateway(env, tmp_path) as (_, url):
        yield url, bootstrap, prefix


async def test_broker_down_gives_503_and_the_same_key_succeeds_once_it_is_back(
        gateway_on_private_broker, private_broker: dict[str, str], project: ProjectKey,
        http: aiohttp.ClientSession) -> None:
    base_url, bootstrap, prefix = gateway_on_private_broker
    api = Api(http, base_url, project.api_key)
    body = {"reference": "inv_durable", "event_type": "invoice.paid", "effect_type": "grant_access"}
    assert (await api.send("POST", "/api/v1/receipt", {**body, "reference": "inv_before"}))[0] == 202

    run_script("kafka.sh", "stop", env=private_broker)
    status, problem, headers = await api.send("POST", "/api/v1/receipt", body, idempotency_key="durable-1")
    assert status == 503 and int(headers["Retry-After"]) > 0
    assert problem["type"].endswith("kafka-unavailable")

    run_script("kafka.sh", "start", env=private_broker)
    started = time.monotonic()
    status, accepted, _ = await eventually(
        lambda: api.send("POST", "/api/v1/receipt", body, idempotency_key="durable-1"),
        lambda answer: answer[0] == 202, timeout=60, interval=1)
    assert accepted["reference"] == "inv_durable" and time.monotonic() - started < 60

    published = [decode(Receipt, v) for _, v in await read_topic(bootstrap, RECEIPTS.name(prefix))]
    assert sorted(r.reference for r in published) == ["inv_before", "inv_durable"]
