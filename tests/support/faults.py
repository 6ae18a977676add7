"""Faults in the tests' own services: stop and start the broker, restart the database.

Only for services the tests started with the project's scripts (``Services.kafka_is_local`` /
``postgres_is_local``): a broker or database from the environment or from testcontainers is not
ours to stop, and a test that needs the fault is skipped there, saying why — except in CI, which
starts its own services with the scripts: a fault test that cannot run there is a failure.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from harness.services import (
    LOCAL_KAFKA_ENV,
    LOCAL_POSTGRES_ENV,
    Services,
    run_script,
    start_local_postgres,
)


def require_local(services: Services, *, kafka: bool = False, postgres: bool = False) -> None:
    """Skip (fail, in CI) unless the services this test stops are ones scripts/ started."""
    foreign = [name for name, wanted, local in (("Kafka", kafka, services.kafka_is_local),
                                                 ("PostgreSQL", postgres, services.postgres_is_local))
               if wanted and not local]
    if not foreign:
        return
    why = (f"this test stops {' and '.join(foreign)}, which it may only do to services scripts/ started; "
           f"this run's come from {services.origin} (unset SENDPROMPTLY_* and run without Docker)")
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


async def stop_kafka(services: Services) -> None:
    """Stop the tests' broker (SIGTERM, SIGKILL after the script's timeout); returns once it is down."""
    require_local(services, kafka=True)
    await asyncio.to_thread(run_script, "kafka.sh", "stop", env=LOCAL_KAFKA_ENV)


async def start_kafka(services: Services) -> None:
    """Start the tests' broker again, with its data; returns once it serves."""
    require_local(services, kafka=True)
    await asyncio.to_thread(run_script, "kafka.sh", "start", env=LOCAL_KAFKA_ENV)


async def restart_postgres(services: Services) -> None:
    """Fast shutdown of the tests' database (every connection dropped, open transactions rolled
    back), then start it again; returns once it accepts connections at the same address."""
    await stop_postgres(services)
    await start_postgres(services)


async def stop_postgres(services: Services) -> None:
    """Fast shutdown of the tests' database: every connection dropped, open transactions rolled back."""
    require_local(services, postgres=True)
    await asyncio.to_thread(run_script, "postgres.sh", "stop", env=LOCAL_POSTGRES_ENV)


async def start_postgres(services: Services) -> None:
    """Start the tests' database again; returns once it accepts connections at the same address."""
    require_local(services, postgres=True)
    url = await asyncio.to_thread(start_local_postgres)
    if url != services.admin_database_url:
        raise RuntimeError(f"PostgreSQL came back at {url}, not {services.admin_database_url} (was its port "
                           "taken while it was down?); the processes under test cannot reconnect to it")
