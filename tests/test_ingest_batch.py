"""Batch ingest against a real gateway and Kafka: one answer per item in input order; exactly the
accepted items reach the topic, once; a retried batch gets the stored answer; item keys share
their namespace with single requests'; bad requests are one clear 4xx."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from api_gateway.ingest import signal_fingerprint
from harness.kafka import read_topic
from harness.services import Services
from store import idempotency as records
from store.db import Pool
from tests.conftest import ProjectKey
from tests.support.api import Api
from topics import RECEIPTS, RESULTS, Receipt, Result, decode

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(http: aiohttp.ClientSession, gateway_url: str, project: ProjectKey) -> Api:
    return Api(http, gateway_url, project.api_key)


def receipt_item(key: str, reference: str, **fields: Any) -> dict[str, Any]:
    return {"idempotency_key": key, "reference": reference, "event_type": "invoice.paid",
            "effect_type": "grant_access", **fields}


async def post_batch(api: Api, kind: str, items: list[Any], *,
                     batch_key: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    return await api.send("POST", f"/api/v1/{kind}/batch", {"items": items}, idempotency_key=batch_key)


async def published_receipts(services: Services, topic_prefix: str) -> list[Receipt]:
    return [decode(Receipt, value) for _, value in
            await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix))]


async def test_a_mixed_batch_answers_each_item_in_order_and_publishes_exactly_the_accepted_ones(
        api: Api, services: Services, topic_prefix: str) -> None:
    single = {"effect_type": "grant_access", "event_type": "invoice.paid", "reference": "inv_seen"}
    status, first_answer = await api.post("/api/v1/receipt", single, idempotency_key="k-seen")
    assert status == 202
    items = [
        receipt_item("k-1", "inv_1", timeout_seconds=60),
        {"idempotency_key": "k-2", "reference": "inv_2"},  # event_type and effect_type missing
        receipt_item("k-seen", "inv_seen"),  # a single request's key and signal: a replay
        receipt_item("k-1", "inv_1", timeout_seconds=60),  # the same item twice in one batch
        receipt_item("k-1", "inv_other"),  # the same key, another signal
        receipt_item("", "inv_3"),  # no usable key
        "not an object",
        receipt_item("k-4", "inv_4", payload={"amount": 100}),
    ]
    status, answer, _ = await post_batch(api, "receipts", items)
    assert status == 200, answer
    results = answer["items"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["outcome"] for r in results] == [
        "accepted", "rejected", "replayed", "replayed", "rejected", "rejected", "rejected", "accepted"]
    assert {e["field"] for e in results[1]["problem"]["errors"]} == {"event_type", "effect_type"}
    assert {k: v for k, v in results[2].items() if k not in ("index", "idempotency_key", "outcome")} == (
        first_answer), "the single request's answer"
    assert results[3]["received_at"] == results[0]["received_at"], "a repeat gets the first's answer"
    assert results[4]["problem"]["type"].endswith("/idempotency-key-reused")
    assert results[5]["problem"]["errors"][0]["field"] == "idempotency_key"
    assert (results[0]["kind"], results[0]["status"], results[0]["timeout_seconds"]) == (
        "receipt", "accepted", 60)

    published = await published_receipts(services, topic_prefix)
    assert sorted((r.idempotency_key, r.reference) for r in published) == [
        ("k-1", "inv_1"), ("k-4", "inv_4"), ("k-seen", "inv_seen")], "the single one, then the batch's two"
    assert all(r.snapshot is None for r in published), "snapshots are off"


async def test_a_retried_batch_gets_the_stored_answer_and_its_items_are_replays_in_another(
        api: Api, services: Services, topic_prefix: str) -> None:
    items = [{"idempotency_key": f"res-{n}", "reference": f"inv_{n}", "status": "failed",
              "detail": "db locked"} for n in range(3)]
    batch_key = uuid.uuid4().hex
    status, first, _ = await post_batch(api, "results", items, batch_key=batch_key)
    assert status == 200 and [r["outcome"] for r in first["items"]] == ["accepted"] * 3
    status, again, headers = await post_batch(api, "results", items, batch_key=batch_key)
    assert (status, again, headers.get("Idempotent-Replayed")) == (200, first, "true")
    # Another batch carrying the same items: each a replay with its first answer, nothing published.
    status, other, _ = await post_batch(api, "results", [*items, {**items[0], "idempotency_key": "res-new"}])
    assert [r["outcome"] for r in other["items"]] == ["replayed"] * 3 + ["accepted"]
    assert [r["received_at"] for r in other["items"][:3]] == [r["received_at"] for r in first["items"]]
    results = [decode(Result, value) for _, value in
               await read_topic(services.kafka_bootstrap, RESULTS.name(topic_prefix))]
    assert sorted(r.idempotency_key for r in results) == ["res-0", "res-1", "res-2", "res-new"]
    assert {r.detail for r in results} == {"db locked"}


@pytest.mark.parametrize(("body", "status", "slug"), [
    ({"items": []}, 422, "invalid-fields"),
    ({"items": [receipt_item(f"k{n}", "r") for n in range(1001)]}, 422, "invalid-fields"),
    ({"signals": []}, 422, "invalid-fields"),
    ([], 422, "invalid-fields"),
])
async def test_a_malformed_or_oversized_batch_is_one_clear_problem(api: Api, body: Any, status: int,
                                                                    slug: str) -> None:
    code, problem, headers = await api.send("POST", "/api/v1/receipts/batch", body)
    assert (code, headers["Content-Type"].split(";")[0]) == (status, "application/problem+json")
    assert problem["type"].endswith("/" + slug)


async def test_a_body_over_one_mebibyte_is_413_and_a_single_request_keeps_its_64_kib(api: Api) -> None:
    big = {"items": [receipt_item(f"k{n}", "r" * 200, payload={"pad": "x" * 2000}) for n in range(600)]}
    code, problem, _ = await api.send("POST", "/api/v1/receipts/batch", big)
    assert (code, problem["type"].split("/")[-1]) == (413, "payload-too-large")
    too_big = receipt_item("k", "r", payload={"pad": "x" * 70_000})
    code, problem, _ = await api.send("POST", "/api/v1/receipt", too_big)
    assert (code, problem["type"].split("/")[-1]) == (413, "payload-too-large")


async def test_an_item_another_request_is_still_publishing_makes_the_batch_a_409_to_retry(
        api: Api, project: ProjectKey, pool: Pool) -> None:
    items = [receipt_item("k-free", "inv_free"), receipt_item("k-busy", "inv_busy")]
    busy = signal_fingerprint("receipt", {k: v for k, v in items[1].items() if k != "idempotency_key"})
    async with pool.connection() as conn:  # a single request with this signal, mid-publish
        claimed = await records.claim(conn, f"{project.project_id}:test", "k-busy", busy)
        assert claimed.outcome is records.ClaimOutcome.OWNED
    status, problem, headers = await post_batch(api, "receipts", items, batch_key="b-1")
    assert (status, problem["type"].split("/")[-1], headers["Retry-After"]) == (
        409, "idempotency-key-in-flight", "1")
    assert "Items 1 " in problem["detail"]
    # Nothing of the batch stays claimed, and nothing is stored for its key: once the other
    # request is done, the same batch goes through.
    async with pool.connection() as conn:
        await records.release(conn, f"{project.project_id}:test", "k-busy")
        left = await (await conn.execute("SELECT key FROM idempotency_records")).fetchall()
    assert left == []
    status, answer, _ = await post_batch(api, "receipts", items, batch_key="b-1")
    assert status == 200 and [r["outcome"] for r in answer["items"]] == ["accepted", "accepted"]
