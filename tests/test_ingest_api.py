"""The ingest API as payments engineers call it: auth, validation, idempotency, snapshots, modes."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import orjson
import pytest

from common.keyring import Keyring
from common.snapshots import open_snapshot
from harness.kafka import read_topic
from harness.stack import TEST_SNAPSHOT_KEYS, Stack
from store.db import open_pool
from store.projects import update_project
from tests.conftest import ProjectKey
from tests.support.api import Api
from topics import RECEIPTS, Receipt, decode

pytestmark = pytest.mark.e2e

RECEIPT = {"reference": "inv_1", "event_type": "invoice.paid", "effect_type": "grant_access"}


async def _post(http: aiohttp.ClientSession, url: str, *, body: bytes,
                headers: dict[str, str]) -> tuple[int, dict, dict]:
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


@pytest.mark.parametrize(("authorization", "reason"), [
    (None, "missing"), ("Basic abc", "missing"), ("Bearer op_notakey", "malformed"),
    ("Bearer sk_" + "A" * 43, "unknown"),
])
async def test_bad_credentials_get_401_with_a_bearer_challenge(
        http: aiohttp.ClientSession, stack: Stack, authorization: str | None, reason: str) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k"}
    if authorization:
        headers["Authorization"] = authorization
    status, problem, response_headers = await _post(http, stack.base_url + "/api/v1/receipt",
                                                    body=orjson.dumps(RECEIPT), headers=headers)
    assert status == 401 and problem["status"] == 401
    assert response_headers["WWW-Authenticate"].startswith("Bearer")
    assert response_headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize(("content_type", "body", "status", "slug"), [
    ("text/plain", orjson.dumps(RECEIPT), 415, "unsupported-media-type"),
    ("application/json", b'{"reference": ', 400, "malformed-json"),
    ("application/json", orjson.dumps({**RECEIPT, "payload": {"x": "y" * 70_000}}), 413, "payload-too-large"),
    ("application/json", orjson.dumps({**RECEIPT, "event_type": "bad type", "colour": "red"}), 422,
     "invalid-fields"),
])
async def test_bad_requests_get_the_right_problem(http: aiohttp.ClientSession, api: Api, stack: Stack,
                                                  content_type: str, body: bytes, status: int,
                                                  slug: str) -> None:
    headers = {**api.headers(), "Content-Type": content_type}
    got, problem, _ = await _post(http, stack.base_url + "/api/v1/receipt", body=body, headers=headers)
    assert (got, problem["type"].rsplit("/", 1)[-1]) == (status, slug)
    if status == 422:
        assert {e["field"] for e in problem["errors"]} == {"event_type", "colour"}


async def test_a_retry_with_the_same_key_is_replayed_and_published_once(
        api: Api, services, topic_prefix: str) -> None:
    first = await api.send("POST", "/api/v1/receipt", RECEIPT, idempotency_key="retry-1")
    second = await api.send("POST", "/api/v1/receipt", RECEIPT, idempotency_key="retry-1")
    assert first[0] == second[0] == 202 and first[1] == second[1]
    assert second[2]["Idempotent-Replayed"] == "true"
    other = await api.send("POST", "/api/v1/receipt", {**RECEIPT, "reference": "inv_2"},
                           idempotency_key="retry-1")
    assert other[0] == 422

    published = await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix))
    assert [decode(Receipt, value).idempotency_key for _, value in published] == ["retry-1"]


async def test_two_gateways_side_by_side_publish_a_doubled_request_once(
        stack_factory, project: ProjectKey, http: aiohttp.ClientSession, services, topic_prefix: str) -> None:
    one, two = stack_factory(), stack_factory()
    clients = [Api(http, s.base_url, project.api_key) for s in (one, two)] * 4
    answers = await asyncio.gather(*(c.send("POST", "/api/v1/receipt", RECEIPT, idempotency_key="double")
                                     for c in clients))
    assert {a[0] for a in answers} <= {202, 409}
    accepted = [a[1] for a in answers if a[0] == 202]
    assert accepted and all(doc == accepted[0] for doc in accepted)

    published = await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix))
    assert len(published) == 1


async def test_snapshots_are_encrypted_before_kafka_and_dropped_when_disabled(
        api: Api, project: ProjectKey, database_url: str, services, topic_prefix: str) -> None:
    secret = f"card-{uuid.uuid4().hex}"
    await api.send("POST", "/api/v1/receipt", {**RECEIPT, "reference": "plain", "payload": {"pan": secret}})
    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        await update_project(conn, project.project_id, {"snapshots_enabled": True})
    await pool.close()
    await asyncio.sleep(2.5)  # the gateway caches the key's project for up to 2 s
    await api.send("POST", "/api/v1/receipt", {**RECEIPT, "reference": "sealed", "payload": {"pan": secret}})

    published = {decode(Receipt, v).reference: (v, decode(Receipt, v))
                 for _, v in await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix))}
    assert all(secret.encode() not in raw for raw, _ in published.values())
    assert published["plain"][1].snapshot is None
    snapshot = published["sealed"][1].snapshot
    assert snapshot is not None
    keyring = Keyring.parse("test", TEST_SNAPSHOT_KEYS)
    assert open_snapshot(keyring, project.project_id, "sealed", snapshot) == {"pan": secret}
    with pytest.raises(ValueError):
        open_snapshot(keyring, project.project_id, "plain", snapshot)  # bound to its reference


async def test_live_and_test_traffic_are_labelled_apart(api: Api, project: ProjectKey, database_url: str,
                                                         services, topic_prefix: str, stack: Stack) -> None:
    await api.send("POST", "/api/v1/receipt", {**RECEIPT, "reference": "in_test"})
    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        await update_project(conn, project.project_id, {"mode": "live"})
    await pool.close()
    await asyncio.sleep(2.5)
    await api.send("POST", "/api/v1/receipt", {**RECEIPT, "reference": "in_live"})
    modes = {decode(Receipt, v).reference: decode(Receipt, v).mode
             for _, v in await read_topic(services.kafka_bootstrap, RECEIPTS.name(topic_prefix))}
    assert modes == {"in_test": "test", "in_live": "live"}

    async with api.session.get(stack.base_url + "/metrics") as response:
        metrics = await response.text()
    assert 'sendpromptly_ingest_signals_total{kind="receipt",mode="live"} 1.0' in metrics
    assert 'sendpromptly_ingest_signals_total{kind="receipt",mode="test"} 1.0' in metrics
    assert 'sendpromptly_http_requests_total{method="POST",route="ingest.receipt",status="202"}' in metrics
