"""Batched idempotency on the ingest path (api_gateway/idempotency_batcher.py): the same answers as
one request at a time, under concurrency, across two gateways, and each key published once."""

from __future__ import annotations

import asyncio
import os
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest

from api_gateway.idempotency_batcher import _Batches
from api_gateway.ingest import signal_fingerprint
from harness.kafka import read_topic
from harness.services import Services
from harness.stack import lone_gateway, stack_env
from store.db import open_pool
from store.idempotency import (
    ClaimOutcome,
    ClaimRequest,
    StoredResponse,
    claim,
    claim_many,
    complete_claimed,
)
from tests.conftest import ProjectKey
from tests.support.api import Api
from topics import RECEIPTS, Receipt, decode

RECEIPT = {"event_type": "invoice.paid", "effect_type": "grant_access"}


async def test_batches_route_each_result_to_its_request_and_an_error_to_the_whole_batch() -> None:
    seen: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        seen.append(items)
        await asyncio.sleep(0.01)
        if -1 in items:
            raise RuntimeError("database gone")
        return [item * 10 for item in items]

    batches: _Batches[int, int] = _Batches(run, max_batch=4, max_in_flight=1)
    assert await asyncio.gather(*(batches.submit(n) for n in range(10))) == [n * 10 for n in range(10)]
    # One statement at a time, at most four items each: what arrived meanwhile went together.
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    seen.clear()
    answers = await asyncio.gather(batches.submit(1), batches.submit(-1), return_exceptions=True)
    assert [type(a) for a in answers] == [RuntimeError, RuntimeError]
    assert await batches.submit(2) == 20  # and the next batch runs


def received_at(text: str) -> datetime:
    """A moment of its own for each request of the claim tests, to the microsecond."""
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=zlib.crc32(text.encode()))


def answer(text: str) -> StoredResponse:
    # Bytes a JSON document could not hold too: the stored body must come back exactly.
    return StoredResponse(202, {"Content-Type": "application/json"},
                          f'{{"n":"{text}"}}'.encode() + b"\x00\xff")


async def test_claim_many_gives_the_outcomes_of_claims_one_after_the_other(database_url: str) -> None:
    a, b = os.urandom(32), os.urandom(32)

    def request(scope: str, key: str, fingerprint: bytes, text: str) -> ClaimRequest:
        return ClaimRequest(scope, key, fingerprint, answer(text), received_at(text))

    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            first = await claim_many(conn, [
                request("prj_1", "k1", a, "first"), request("prj_1", "k2", a, "k2"),
                request("prj_1", "k1", a, "again"),  # the same request again, in the same batch
                request("prj_1", "k1", b, "other"),  # the same key with another body
                request("prj_2", "k1", b, "prj_2"),  # another project's key
            ])
            assert [c.outcome for c in first] == [ClaimOutcome.OWNED, ClaimOutcome.OWNED,
                                                  ClaimOutcome.IN_FLIGHT, ClaimOutcome.MISMATCH,
                                                  ClaimOutcome.OWNED]

            # Only k1's action succeeded: its stored answer becomes final, k2 stays in flight.
            await complete_claimed(conn, [("prj_1", "k1")])
            second = await claim_many(conn, [
                request("prj_1", "k1", a, "later"), request("prj_1", "k1", b, "x"),
                request("prj_1", "k2", a, "x"), request("prj_1", "k3", b, "k3"),
            ])
            assert [c.outcome for c in second] == [ClaimOutcome.REPLAY, ClaimOutcome.MISMATCH,
                                                   ClaimOutcome.IN_FLIGHT, ClaimOutcome.OWNED]
            assert second[0].response == answer("first")

            # k1 expired (24 h); the claims on k2 and k3 were abandoned (their leases ran out).
            await conn.execute("UPDATE idempotency_records SET created_at = now() - interval '25 hours'"
                               " WHERE scope = 'prj_1' AND key = 'k1'")
            await conn.execute("UPDATE idempotency_records SET lease_until = now() - interval '1 second'"
                               " WHERE scope = 'prj_1' AND key IN ('k2', 'k3')")
            third = await claim_many(conn, [
                request("prj_1", "k1", b, "new k1"), request("prj_1", "k1", b, "x"),
                request("prj_1", "k2", a, "new k2"), request("prj_1", "k3", a, "x"),
            ])
            # An expired record is anyone's; an abandoned claim only the same request's.
            assert [c.outcome for c in third] == [ClaimOutcome.OWNED, ClaimOutcome.IN_FLIGHT,
                                                  ClaimOutcome.OWNED, ClaimOutcome.MISMATCH]
            # The expired record is new; the abandoned claim keeps its first owner's answer and
            # moment of receipt, which the new owner publishes and answers again.
            assert (third[0].taken_over, third[0].response, third[0].received_at) == (False, None, None)
            assert (third[2].taken_over, third[2].response, third[2].received_at) == (
                True, answer("k2"), received_at("k2"))
            # Each answer is final once its owner completes it.
            await complete_claimed(conn, [("prj_1", "k1"), ("prj_1", "k2"), ("prj_2", "k1")])
            fourth = await claim_many(conn, [request("prj_1", "k1", b, "x"), request("prj_1", "k2", a, "x"),
                                             request("prj_2", "k1", b, "x")])
            assert [c.response for c in fourth] == [answer("new k1"), answer("k2"), answer("prj_2")]
    finally:
        await pool.close()


@pytest.fixture
def gateways(services: Services, database_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two gateway processes on one database and broker, as two replicas would be."""
    env = stack_env(kafka_bootstrap=services.kafka_bootstrap, database_url=database_url,
                    topic_prefix=topic_prefix, workdir=tmp_path)
    with ExitStack() as started:
        yield [started.enter_context(lone_gateway(env, tmp_path, f"gateway-{n}"))[1] for n in range(2)]


@pytest.mark.e2e
async def test_concurrent_new_repeated_and_reused_keys_get_the_right_answers_and_publish_once(
        gateways: list[str], project: ProjectKey, http: aiohttp.ClientSession, services: Services,
        topic_prefix: str, database_url: str) -> None:
    one, two = (Api(http, url, project.api_key) for url in gateways)
    run = uuid.uuid4().hex[:8]

    def body(key: str, variant: str = "") -> dict[str, str]:
        return {**RECEIPT, "reference": f"inv_{key}{variant}"}

    # Completed before the burst: their repeats are replays, their reuses with another body 422s.
    seeded = [f"{run}-seed-{n}" for n in range(20)]
    first_answers = {}
    for n, key in enumerate(seeded):
        status, doc, _ = await (one if n % 2 else two).send("POST", "/api/v1/receipt", body(key),
                                                            idempotency_key=key)
        assert status == 202
        first_answers[key] = doc
    # Held in flight, as by a slow request elsewhere: the batched path must answer 409.
    held, held_body = f"{run}-held", orjson.dumps(body("held"))
    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:  # ingest keys are scoped per project and mode
        await claim(conn, f"{project.project_id}:test", held, signal_fingerprint("receipt", body("held")))
    await pool.close()

    async def send_held() -> tuple[int, dict, dict]:
        async with http.post(gateways[0] + "/api/v1/receipt", data=held_body,
                             headers={**one.headers(held), "Content-Type": "application/json"}) as response:
            return response.status, await response.json(content_type=None), dict(response.headers)

    fresh = [f"{run}-fresh-{n}" for n in range(120)]
    # Sent three times at once, twice to one gateway (likely one batch) and once to the other:
    twins = [f"{run}-twin-{n}" for n in range(20)]  # with the same body,
    clashes = [f"{run}-clash-{n}" for n in range(20)]  # with three different bodies.
    calls = (
        [("fresh", key, (one, two)[n % 2], body(key)) for n, key in enumerate(fresh)]
        + [("repeat", key, (two, one)[n % 2], body(key)) for n, key in enumerate(seeded)]
        + [("reuse", key, (one, two)[n % 2], body(key, "-other")) for n, key in enumerate(seeded)]
        + [("twin", key, api, body(key)) for key in twins for api in (one, one, two)]
        + [("clash", key, api, body(key, variant)) for key in clashes
           for api, variant in ((one, ""), (one, "-b"), (two, "-c"))]
    )
    answers = await asyncio.gather(*(api.send("POST", "/api/v1/receipt", doc, idempotency_key=key)
                                     for _, key, api, doc in calls), send_held())
    calls.append(("held", held, one, body("held")))
    by_kind: dict[str, list[tuple[str, int, dict, dict]]] = {}
    for (kind, key, _, _), (status, doc, headers) in zip(calls, answers, strict=True):
        by_kind.setdefault(kind, []).append((key, status, doc, headers))

    for key, status, doc, headers in by_kind["fresh"]:
        assert status == 202 and doc["reference"] == f"inv_{key}" and "Idempotent-Replayed" not in headers
    for key, status, doc, headers in by_kind["repeat"]:
        assert (status, doc, headers.get("Idempotent-Replayed")) == (202, first_answers[key], "true")
    for _, status, doc, _ in by_kind["reuse"]:
        assert status == 422 and doc["type"].endswith("idempotency-key-reused")
    [(_, held_status, held_doc, _)] = by_kind["held"]
    assert held_status == 409 and held_doc["type"].endswith("idempotency-key-in-flight")
    for key in twins:
        three = [(status, doc, headers) for k, status, doc, headers in by_kind["twin"] if k == key]
        owners = [(status, doc, headers) for status, doc, headers in three
                  if status == 202 and "Idempotent-Replayed" not in headers]
        assert len(owners) == 1, three
        accepted = owners[0][1]
        # The others came while the first was in flight (409), or after it (the replay).
        for status, doc, headers in three:
            if (status, doc, headers) != owners[0]:
                assert (status == 409 and doc["type"].endswith("idempotency-key-in-flight")) or (
                    status == 202 and headers.get("Idempotent-Replayed") == "true" and doc == accepted), three
    clash_winners = {}
    for key in clashes:
        three_bodies = [(status, doc) for k, status, doc, _ in by_kind["clash"] if k == key]
        assert sorted(status for status, _ in three_bodies) == [202, 422, 422], three_bodies
        clash_winners[key] = next(doc["reference"] for status, doc in three_bodies if status == 202)

    # A fresh key sent again after the burst is a replay of its first answer.
    replay = await two.send("POST", "/api/v1/receipt", body(fresh[0]), idempotency_key=fresh[0])
    assert replay[0] == 202 and replay[2].get("Idempotent-Replayed") == "true"
    assert replay[1] == next(doc for key, _, doc, _ in by_kind["fresh"] if key == fresh[0])

    published = [decode(Receipt, value) for _, value in
                 await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix))]
    counts = Counter(receipt.idempotency_key for receipt in published)
    assert set(counts) == {*seeded, *fresh, *twins, *clashes} and set(counts.values()) == {1}
    references = {receipt.idempotency_key: receipt.reference for receipt in published}
    assert all(references[key] == f"inv_{key}" for key in [*seeded, *fresh, *twins])
    assert all(references[key] == clash_winners[key] for key in clashes)
