"""Fixtures: real Kafka and PostgreSQL (see ``harness/services.py``), isolated per test by a
topic prefix and a database of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from common.apikeys import generate_api_key
from harness.db import create_database, drop_database, migrated_template
from harness.processes import free_port
from harness.services import Services, provide_services
from harness.stack import DEFAULT_SINKS, Stack, build_stack, lone_gateway, stack_env
from sendpromptly.bootstrap import create_operator
from sinks.read_model import ReadModelSink
from store.db import Pool, open_pool
from store.projects import add_api_key, create_project
from tests.support.api import Api
from tests.support.cli import Cli, Operator
from tests.support.cli import create_operator as create_operator_with_cli
from topics.admin import delete_topics, ensure_topics

# Fixtures for real alert peers (SMTP server, Slack-like HTTPS receiver), shared by several files.
pytest_plugins = ["tests.support.alert_peers", "tests.support.mail_catcher"]

TEST_FLOW_PARTITIONS = 2


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with provide_services() as found:
        yield found


@pytest.fixture(scope="session")
def template_database(services: Services) -> Iterator[str]:
    name = migrated_template(services.admin_database_url)
    yield name
    drop_database(services.admin_database_url, name)


@pytest.fixture
def database_url(services: Services, template_database: str) -> Iterator[str]:
    name = f"sp_test_{uuid.uuid4().hex[:12]}"
    url = create_database(services.admin_database_url, name, template=template_database)
    yield url
    drop_database(services.admin_database_url, name)


@pytest.fixture
def topic_prefix(services: Services) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(services.kafka_bootstrap, prefix, TEST_FLOW_PARTITIONS)
    yield prefix
    delete_topics(services.kafka_bootstrap, prefix)


@pytest.fixture
def stack_factory(services: Services, database_url: str, topic_prefix: str, tmp_path: Path,
                  request: pytest.FixtureRequest) -> Iterator:
    started: list[Stack] = []

    def start(*, sinks: tuple[str, ...] = DEFAULT_SINKS, **extra_env: str) -> Stack:
        # Each stack its own directory: two agents must not share one RocksDB store.
        workdir = tmp_path / f"stack-{len(started)}"
        workdir.mkdir()
        env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=database_url,
                        topic_prefix=topic_prefix, workdir=workdir, extra=extra_env)
        stack = build_stack(env, workdir, sinks)
        started.append(stack)
        stack.start()
        return stack

    yield start
    for stack in started:
        stack.stop()
        request.node.add_report_section("teardown", "stack logs", stack.logs())


@pytest.fixture
def stack(stack_factory) -> Stack:
    return stack_factory()


@pytest.fixture
def gateway_url(services: Services, database_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[str]:
    """A gateway alone (no agents, no sinks) on the test services: for what the HTTP API itself does."""
    env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=database_url,
                    topic_prefix=topic_prefix, workdir=tmp_path)
    with lone_gateway(env, tmp_path) as (_, url):
        yield url


@pytest.fixture
def gateway_without_kafka(database_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[str]:
    """A gateway alone whose Kafka never answers (nothing listens on its port); its base URL."""
    nobody_listens = f"127.0.0.1:{free_port()}"
    env = stack_env(kafka_bootstrap=nobody_listens, database_url=database_url, topic_prefix=topic_prefix,
                    workdir=tmp_path, extra={"SENDPROMPTLY_PRODUCE_TIMEOUT_MS": "1500"})
    with lone_gateway(env, tmp_path, ready_path="/healthz") as (_, url):
        yield url


@pytest.fixture
def admin(database_url: str) -> Operator:
    """An admin operator, made as on a fresh install: ``sendpromptly operator create --admin``."""
    return create_operator_with_cli(database_url, "admin@example.com", "--admin")


@pytest.fixture
def cli(stack: Stack, admin: Operator) -> Cli:
    """The operator commands, as the admin, against the test's stack."""
    return Cli(stack, admin)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A connection pool on the test's database."""
    opened = await open_pool(database_url, max_size=2)
    yield opened
    await opened.close()


@pytest.fixture
def sink(pool: Pool) -> ReadModelSink:
    """The read-model sink on the test's database, fed records by hand."""
    return ReadModelSink(pool)


@dataclass(frozen=True)
class ProjectKey:
    project_id: str
    api_key: str


@pytest.fixture
async def project(database_url: str) -> ProjectKey:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            created = await create_project(conn, name=f"test {uuid.uuid4().hex[:6]}", timeout_minutes=30)
            key = generate_api_key()
            await add_api_key(conn, created.id, "Test key", key)
    finally:
        await pool.close()
    return ProjectKey(created.id, key.plaintext)


@pytest.fixture
async def admin_token(database_url: str) -> str:
    created = await create_operator(database_url, email=f"admin-{uuid.uuid4().hex[:6]}@example.com",
                                    is_admin=True, project_ids=[], password=None)
    return created.token


@pytest.fixture
def operator_api(http: aiohttp.ClientSession, stack: Stack, admin_token: str) -> Api:
    return Api(http, stack.base_url, admin_token)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def api(http: aiohttp.ClientSession, stack: Stack, project: ProjectKey) -> Api:
    return Api(http, stack.base_url, project.api_key)
