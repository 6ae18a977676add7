"""Ingest when the database fails around Kafka's ack: the answer a signal got is the one that stands.

A completion that fails after the ack still answers 202 and lands later; a claim whose completion
never landed is taken over by the retry with its first answer and the same signal; PostgreSQL
restarting under load costs 503s with Retry-After, never a 500 and never a 202 whose signal differs
from what it answered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.kafka import read_topic
from harness.processes import ManagedProcess
from harness.services import Services
from harness.stack import lone_gateway, stack_env
from store.db import open_pool
from tests.conftest import ProjectKey
from tests.support.api import Api, eventually
from tests.support.faults import restart_postgres, start_postgres, stop_postgres
from topics import RECEIPTS, Receipt, decode
from topics.fields import format_timestamp

pytestmark = pytest.mark.e2e

TIMEOUT_SECONDS = 600


def receipt_body(reference: str) -> dict[str, Any]:
    return {"reference": reference, "event_type": "invoice.paid", "effect_type": "grant_access",
            "timeout_seconds": TIMEOUT_SECONDS}


@pytest.fixture
def gateway(services: Services, database_url: str, topic_prefix: str,
            tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=database_url,
                    topic_prefix=topic_prefix, workdir=tmp_path)
    with lone_gateway(env, tmp_path) as started:
        yield started


async def published_receipts(services: Services, topic_prefix: str) -> dict[str, list[Receipt]]:
    """Every receipt on the topic, by Idempotency-Key."""
    by_key: dict[str, list[Receipt]] = {}
    for _, value in await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix)):
        receipt = decode(Receipt, value)
        by_key.setdefault(receipt.idempotency_key, []).append(receipt)
    return by_key


def as_answered(receipt: Receipt, answer: dict[str, Any]) -> bool:
    """The receipt is what the 202 said: its reference, when it was received (which, with its
    timeout, makes the deadline the agents will hold) and its timeout."""
    return (receipt.reference, format_timestamp(receipt.received_at), receipt.timeout_seconds) == (
        answer["reference"], answer["received_at"], answer["timeout_seconds"])


async def on_database(database_url: str, *statements: tuple[str, tuple[object, ...] | None]) -> list[int]:
    """Run ``statements`` on the test's database, as an operator at a psql prompt would; returns
    each one's row count."""
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            return [(await conn.execute(query, params)).rowcount for query, params in statements]
    finally:
        await pool.close()


# Completions of the keys listed in completion_faults fail as a serialization failure would: an
# error that passes if tried again, raised by the real database after Kafka's ack.
FAIL_COMPLETIONS = ("""
    CREATE TABLE completion_faults (key text PRIMARY KEY);
    CREATE FUNCTION fail_completion() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM completion_faults WHERE key = NEW.key) THEN
            RAISE EXCEPTION 'completion of % failed (injected by the test)', NEW.key
                USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER fail_completion BEFORE UPDATE OF state ON idempotency_records
        FOR EACH ROW WHEN (NEW.state = 'completed') EXECUTE FUNCTION fail_completion();
""", None)


async def test_a_completion_failing_after_kafkas_ack_still_answers_202_and_lands_in_the_background(
        gateway: tuple[ManagedProcess, str], project: ProjectKey, http: aiohttp.ClientSession,
        services: Services, topic_prefix: str, database_url: str) -> None:
    api = Api(http, gateway[1], project.api_key)
    key, body = f"late-{uuid.uuid4().hex[:8]}", receipt_body("inv_late")
    await on_database(database_url, FAIL_COMPLETIONS, ("INSERT INTO completion_faults VALUES (%s)", (key,)))

    status, first, _ = await api.send("POST", "/api/v1/receipt", body, idempotency_key=key)
    assert status == 202
    status, problem, _ = await api.send("POST", "/api/v1/receipt", body, idempotency_key=key)
    assert status == 409 and problem["type"].endswith("idempotency-key-in-flight")

    await on_database(database_url, ("DELETE FROM completion_faults", None))
    status, replayed, headers = await eventually(
        lambda: api.send("POST", "/api/v1/receipt", body, idempotency_key=key),
        lambda answer: answer[0] != 409, timeout=15, interval=0.2)
    assert (status, replayed, headers.get("Idempotent-Replayed")) == (202, first, "true")
    [receipt] = (await published_receipts(services, topic_prefix))[key]
    assert as_answered(receipt, first)


async def abandon_claim(database_url: str, scope: str, key: str, *, lease_left: timedelta) -> None:
    """Put a completed key back in flight with ``lease_left`` on its lease, as if the completion
    after Kafka's ack had never landed (the gateway died, or the database stayed away)."""
    [updated] = await on_database(database_url, (
        "UPDATE idempotency_records SET state = 'in_flight', lease_until = now() + %s"
        " WHERE scope = %s AND key = %s", (lease_left, scope, key)))
    assert updated == 1


async def test_a_retry_taking_over_an_abandoned_claim_answers_the_first_202_and_republishes_its_signal(
        gateway: tuple[ManagedProcess, str], project: ProjectKey, http: aiohttp.ClientSession,
        services: Services, topic_prefix: str, database_url: str) -> None:
    api = Api(http, gateway[1], project.api_key)
    key, body = f"takeover-{uuid.uuid4().hex[:8]}", receipt_body("inv_takeover")
    status, first, _ = await api.send("POST", "/api/v1/receipt", body, idempotency_key=key)
    assert status == 202

    scope = f"{project.project_id}:test"  # ingest keys are scoped per project and mode
    await abandon_claim(database_url, scope, key, lease_left=timedelta(seconds=60))
    status, problem, _ = await api.send("POST", "/api/v1/receipt", body, idempotency_key=key)
    assert status == 409 and problem["type"].endswith("idempotency-key-in-flight")

    await abandon_claim(database_url, scope, key, lease_left=timedelta(seconds=-1))
    await asyncio.sleep(0.05)  # a later moment, which the retry must not stamp on the signal
    status, again, headers = await api.send("POST", "/api/v1/receipt", body, idempotency_key=key)
    # This request published (again), so it is no replay; but its answer is the first one.
    assert (status, again, headers.get("Idempotent-Replayed")) == (202, first, None)
    status, replayed, headers = await api.send("POST", "/api/v1/receipt", body, idempotency_key=key)
    assert (status, replayed, headers.get("Idempotent-Replayed")) == (202, first, "true")

    [original, republished] = (await published_receipts(services, topic_prefix))[key]
    assert republished.received_at == original.received_at
    assert as_answered(original, first) and as_answered(republished, first)


@dataclass
class Traffic:
    """What clients sending receipts through a database restart saw."""

    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> its 202
    unavailable: int = 0
    refused: list[tuple[str, int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    sent_during_restart: int = 0


async def send_until_accepted(api: Api, key: str, traffic: Traffic, restarting: asyncio.Event) -> None:
    """One receipt, retried with its Idempotency-Key after each 503 as its Retry-After says."""
    while True:
        if restarting.is_set():
            traffic.sent_during_restart += 1
        status, doc, headers = await api.send("POST", "/api/v1/receipt", receipt_body(f"inv_{key}"),
                                              idempotency_key=key)
        if status == 202:
            traffic.accepted[key] = doc
            return
        if not (status == 503 and headers.get("Content-Type") == "application/problem+json"
                and int(headers.get("Retry-After", "0")) > 0):
            traffic.refused.append((key, status, doc, headers))
            return
        traffic.unavailable += 1
        await asyncio.sleep(int(headers["Retry-After"]))


async def test_postgres_restarting_under_load_costs_503s_with_retry_after_and_every_202_stands(
        gateway: tuple[ManagedProcess, str], project: ProjectKey, http: aiohttp.ClientSession,
        services: Services, topic_prefix: str) -> None:
    process, url = gateway
    api = Api(http, url, project.api_key)
    traffic, restarting, stop = Traffic(), asyncio.Event(), asyncio.Event()
    run = uuid.uuid4().hex[:8]

    async def client(n: int) -> None:
        sent = 0
        while not stop.is_set():
            await send_until_accepted(api, f"{run}-{n}-{sent}", traffic, restarting)
            sent += 1

    clients = [asyncio.create_task(client(n)) for n in range(8)]
    await asyncio.sleep(1.5)
    restarting.set()
    started = time.monotonic()
    await restart_postgres(services)
    restarting.clear()
    restart_seconds = time.monotonic() - started
    await asyncio.sleep(3)  # and on, once the database is back
    stop.set()
    await asyncio.wait_for(asyncio.gather(*clients), timeout=60)

    seen = (f"{len(traffic.accepted)} accepted, {traffic.unavailable} answered 503, "
            f"{traffic.sent_during_restart} sent during the {restart_seconds:.1f} s restart")
    assert not traffic.refused, (f"answers other than 202 and 503 + Retry-After ({seen}): "
                                 f"{traffic.refused}\n{process.log_tail()}")
    assert traffic.sent_during_restart > 0, seen
    published = await published_receipts(services, topic_prefix)
    wrong = {key: published.get(key) for key, answer in traffic.accepted.items()
             if not published.get(key) or not all(as_answered(r, answer) for r in published[key])}
    assert not wrong, f"202s whose signal is missing or differs ({seen}): {wrong}"


async def test_a_database_away_for_long_is_a_prompt_503_and_the_retry_is_accepted_once_it_is_back(
        gateway: tuple[ManagedProcess, str], project: ProjectKey, http: aiohttp.ClientSession,
        services: Services, topic_prefix: str) -> None:
    api = Api(http, gateway[1], project.api_key)
    status, _, _ = await api.send("POST", "/api/v1/receipt", receipt_body("inv_warm"),
                                  idempotency_key=f"warm-{uuid.uuid4().hex[:8]}")
    assert status == 202  # the key's lookup is cached: the request gets as far as its claim
    key, body = f"away-{uuid.uuid4().hex[:8]}", receipt_body("inv_away")
    await stop_postgres(services)
    try:
        started = time.monotonic()
        status, problem, headers = await api.send("POST", "/api/v1/receipt", body, idempotency_key=key)
        waited = time.monotonic() - started
    finally:
        await start_postgres(services)
    assert (status, problem["type"].rsplit("/", 1)[-1]) == (503, "database-unavailable"), problem
    assert int(headers["Retry-After"]) >= 1
    # Prompt: the gateway's pool gives up after its own wait, not psycopg's default 30 s.
    assert waited < 15, f"answered after {waited:.1f} s"

    status, accepted, _ = await eventually(
        lambda: api.send("POST", "/api/v1/receipt", body, idempotency_key=key),
        lambda answer: answer[0] == 202, timeout=30, interval=0.5)
    [receipt] = (await published_receipts(services, topic_prefix))[key]
    assert as_answered(receipt, accepted)
