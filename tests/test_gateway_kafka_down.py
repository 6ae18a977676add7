"""The gateway never claims success for a signal Kafka did not take."""

from __future__ import annotations

import aiohttp
import psycopg
import pytest

from tests.conftest import ProjectKey
from tests.support.api import Api

pytestmark = pytest.mark.e2e


async def test_it_answers_503_with_retry_after_when_the_broker_is_down(
    gateway_without_kafka: str, project: ProjectKey, http: aiohttp.ClientSession
) -> None:
    api = Api(http, gateway_without_kafka, project.api_key)
    async with http.post(gateway_without_kafka + "/api/v1/receipt", headers=api.headers("k-1"),
                         json={"reference": "inv_1", "event_type": "invoice.paid",
                               "effect_type": "grant"}) as response:
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert int(response.headers["Retry-After"]) > 0
        problem = await response.json(content_type=None)
    assert problem["status"] == 503 and "Idempotency-Key" in problem["detail"]

    async with http.get(gateway_without_kafka + "/readyz") as response:
        assert response.status == 503
        assert (await response.json())["checks"] == {"kafka": False, "database": True}


async def test_a_batch_kafka_did_not_take_is_503_and_leaves_no_key_claimed(
    gateway_without_kafka: str, project: ProjectKey, http: aiohttp.ClientSession, database_url: str
) -> None:
    api = Api(http, gateway_without_kafka, project.api_key)
    items = [{"idempotency_key": f"k-{n}", "reference": f"inv_{n}", "status": "succeeded"} for n in range(3)]
    status, problem, headers = await api.send("POST", "/api/v1/results/batch", {"items": items},
                                               idempotency_key="batch-1")
    assert (status, problem["type"].split("/")[-1]) == (503, "kafka-unavailable")
    assert int(headers["Retry-After"]) > 0
    # Neither the batch's key nor any item's stays claimed: the retry owns them all again.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT scope, key FROM idempotency_records")).fetchall()
    assert rows == []
