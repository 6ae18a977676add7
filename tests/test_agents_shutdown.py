"""The agents give their database connections back when they stop: the pool is closed on stop,
not left to the process's exit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from agents.resources import FlowResources
from agents.tracker import TrackerTopics
from common.config import Settings
from harness.processes import ManagedProcess, free_port
from harness.services import Services
from harness.stack import stack_env

TOPICS = TrackerTopics(receipts="receipts", results="results", incidents="incidents", deadlines="deadlines")


def named(database_url: str, application_name: str) -> str:
    """``database_url`` with its connections named ``application_name`` in pg_stat_activity."""
    return make_conninfo(database_url, application_name=application_name)


async def connections(database_url: str, application_name: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                    (application_name,))
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def connections_become(database_url: str, application_name: str, wanted: bool,
                             timeout: float = 10.0) -> int:
    """How many connections ``application_name`` holds once there are some (``wanted``) or none,
    or when ``timeout`` is up."""
    deadline = time.monotonic() + timeout
    while True:
        count = await connections(database_url, application_name)
        if (count > 0) == wanted or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


async def test_stopping_the_agents_resources_closes_their_database_connections(database_url: str) -> None:
    name = f"sp-agents-{uuid.uuid4().hex[:8]}"
    resources = FlowResources(Settings.from_env({"SENDPROMPTLY_DATABASE_URL": named(database_url, name)}),
                              TOPICS)
    await resources.start()
    await resources.tracker()
    assert await connections_become(database_url, name, wanted=True) > 0

    await resources.stop()
    assert await connections_become(database_url, name, wanted=False) == 0


@pytest.fixture
def agents_worker(services: Services, database_url: str, topic_prefix: str,
                  tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    """An agents worker alone, its database connections named; yields it and that name."""
    name = f"sp-agents-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=named(database_url, name),
                    topic_prefix=topic_prefix, workdir=tmp_path,
                    extra={"SENDPROMPTLY_AGENTS_WEB_PORT": str(port)})
    worker = ManagedProcess("agents", ["agents"], env, tmp_path / "agents.log")
    worker.start()
    try:
        worker.wait_ready(f"http://127.0.0.1:{port}/readyz")
        yield worker, name
    finally:
        worker.kill()


@pytest.mark.e2e
async def test_on_sigterm_the_agents_worker_closes_its_database_pool_and_exits_cleanly(
        agents_worker: tuple[ManagedProcess, str], database_url: str) -> None:
    worker, name = agents_worker
    assert await connections_become(database_url, name, wanted=True) > 0

    worker.stop()
    assert not worker.alive, worker.log_tail()
    assert worker.returncode == 0, worker.log_tail()
    assert "database pool closed" in worker.log_tail(), worker.log_tail()
    assert await connections(database_url, name) == 0
