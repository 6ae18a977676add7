"""Where the tests' Kafka and PostgreSQL come from, in this order:

1. ``SENDPROMPTLY_KAFKA_BOOTSTRAP`` / ``SENDPROMPTLY_DATABASE_URL`` when set (a stack you run);
2. testcontainers, where a Docker engine answers (a developer laptop);
3. the project's own scripts (``scripts/kafka.sh``, ``scripts/postgres.sh``), which fetch and start
   real local processes — this machine and CI.

Local services are left running after the session so the next run starts fast; ``make down``
stops them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_KAFKA_PORT = os.environ.get("SENDPROMPTLY_TEST_KAFKA_PORT", "19092")
TEST_PG_PORT = os.environ.get("SENDPROMPTLY_TEST_PG_PORT", "15433")


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    # A database the tests may use to create per-test databases (needs CREATEDB).
    admin_database_url: str
    origin: str
    # Started by the project's scripts with ``LOCAL_KAFKA_ENV`` / ``LOCAL_POSTGRES_ENV``, so the
    # tests may stop and start them (``tests/support/faults.py``).
    kafka_is_local: bool = False
    postgres_is_local: bool = False


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run one of ``scripts/*.sh``; returns its stdout, fails loudly with its output."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args], env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/{script} {' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stdout}\n{done.stderr}")
    return done.stdout


def local_kafka_env(port: str, state_dir: Path) -> dict[str, str]:
    return {"KAFKA_PORT": port, "KAFKA_STATE_DIR": str(state_dir)}


# The scripts' environment for the tests' own broker and database (kept apart from ``make up``'s).
LOCAL_KAFKA_ENV = local_kafka_env(TEST_KAFKA_PORT, REPO / ".run" / "test-kafka")
LOCAL_POSTGRES_ENV = {"PG_PORT": TEST_PG_PORT, "PG_STATE_DIR": str(REPO / ".run" / "test-postgres")}


@contextmanager
def provide_services() -> Iterator[Services]:
    kafka = os.environ.get("SENDPROMPTLY_KAFKA_BOOTSTRAP")
    database = os.environ.get("SENDPROMPTLY_DATABASE_URL")
    with ExitStack() as stack:
        origin = "environment"
        if (kafka is None or database is None) and _docker_answers():
            origin = "testcontainers"
            kafka = kafka or stack.enter_context(_kafka_container())
            database = database or stack.enter_context(_postgres_container())
        kafka_is_local = kafka is None
        if kafka is None:
            origin = "local scripts"
            run_script("kafka.sh", "start", env=LOCAL_KAFKA_ENV)
            kafka = f"127.0.0.1:{TEST_KAFKA_PORT}"
        postgres_is_local = database is None
        if database is None:
            origin = "local scripts"
            database = start_local_postgres()
        yield Services(kafka_bootstrap=kafka, admin_database_url=database, origin=origin,
                       kafka_is_local=kafka_is_local, postgres_is_local=postgres_is_local)


def start_local_postgres() -> str:
    """Start the tests' own PostgreSQL (a no-op when it runs); returns its URL."""
    return run_script("postgres.sh", "start", env=LOCAL_POSTGRES_ENV).strip().splitlines()[-1]


@contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
        yield container.get_bootstrap_server()


@contextmanager
def _postgres_container() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15", driver=None) as container:
        yield container.get_connection_url()
