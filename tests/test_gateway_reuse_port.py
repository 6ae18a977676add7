"""Several gateway processes on one host share a port when SENDPROMPTLY_HTTP_REUSE_PORT is on, and
only then: the kernel spreads connections over them, and one going away leaves the others serving."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from harness.processes import ManagedProcess, free_port
from harness.services import Services
from harness.stack import stack_env
from tests.conftest import ProjectKey
from tests.support.api import Api

pytestmark = pytest.mark.e2e

RECEIPT = {"event_type": "invoice.paid", "effect_type": "grant_access"}
LISTENING = "gateway listening on"


def gateway_env(services: Services, database_url: str, topic_prefix: str, tmp_path: Path, port: int,
                reuse_port: str) -> dict[str, str]:
    return stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=database_url,
                     topic_prefix=topic_prefix, workdir=tmp_path,
                     extra={"SENDPROMPTLY_HTTP_PORT": str(port), "SENDPROMPTLY_HTTP_REUSE_PORT": reuse_port})


async def send_receipts(api: Api, count: int) -> None:
    for _ in range(count):
        key = uuid.uuid4().hex
        status, doc, _ = await api.send("POST", "/api/v1/receipt", {**RECEIPT, "reference": f"inv_{key}"},
                                        idempotency_key=key)
        assert status == 202, doc


async def test_two_gateways_share_a_port_and_one_serves_on_when_the_other_stops(
        services: Services, database_url: str, topic_prefix: str, tmp_path: Path,
        project: ProjectKey) -> None:
    port = free_port()
    env = gateway_env(services, database_url, topic_prefix, tmp_path, port, "true")
    first, second = (ManagedProcess(f"gateway-{n}", ["gateway"], env, tmp_path / f"gateway-{n}.log")
                     for n in range(2))
    url = f"http://127.0.0.1:{port}"
    first.start()
    try:
        first.wait_ready(url + "/readyz")
        second.start()
        second.wait_log(LISTENING)
        # A new connection for each request, so that the kernel picks a process each time.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            api = Api(http, url, project.api_key)
            await send_receipts(api, 10)
            assert first.alive and second.alive
            first.stop()
            # The second process holds the port too: it alone answers now.
            await send_receipts(api, 5)
    finally:
        first.stop()
        second.stop()


async def test_without_the_setting_a_second_gateway_on_the_port_fails_to_start(
        services: Services, database_url: str, topic_prefix: str, tmp_path: Path) -> None:
    port = free_port()
    env = gateway_env(services, database_url, topic_prefix, tmp_path, port, "false")
    first = ManagedProcess("gateway-0", ["gateway"], env, tmp_path / "gateway-0.log")
    second = ManagedProcess("gateway-1", ["gateway"], env, tmp_path / "gateway-1.log")
    first.start()
    try:
        first.wait_ready(f"http://127.0.0.1:{port}/readyz")
        second.start()
        # The first one answers on the port meanwhile, so wait for the second to exit, not to be ready.
        deadline = time.monotonic() + 30
        while second.alive and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not second.alive, "a second gateway on a taken port kept running"
        assert "address already in use" in second.log_tail().lower()
    finally:
        first.stop()
        second.stop()
