"""A small client for the public HTTP API, and a helper to wait for eventual state."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp

from topics.fields import parse_timestamp

T = TypeVar("T")


class Api:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str):
        self.session = session
        self.base_url = base_url
        self.token = token

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        return headers

    async def post(self, path: str, body: Any, *,
                   idempotency_key: str | None = None) -> tuple[int, dict[str, Any]]:
        async with self.session.post(self.base_url + path, json=body,
                                     headers=self.headers(idempotency_key)) as response:
            return response.status, await response.json(content_type=None)

    async def send(self, method: str, path: str, body: Any = None, *,
                   idempotency_key: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Any method; returns status, JSON document and headers."""
        async with self.session.request(method, self.base_url + path, json=body,
                                        headers=self.headers(idempotency_key)) as response:
            return response.status, await response.json(content_type=None), dict(response.headers)

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.base_url + path,
                                    headers={"Authorization": f"Bearer {self.token}"}) as response:
            return response.status, await response.json(content_type=None)

    async def receipt(self, reference: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        body = {"reference": reference, "event_type": "invoice.paid", "effect_type": "grant_access", **fields}
        return await self.post("/api/v1/receipt", body)

    async def result(self, reference: str, status: str = "succeeded",
                     **fields: Any) -> tuple[int, dict[str, Any]]:
        return await self.post("/api/v1/result", {"reference": reference, "status": status, **fields})

    async def flow(self, reference: str) -> tuple[int, dict[str, Any]]:
        return await self.get(f"/api/v1/flows/{reference}")


def deadline_of(accepted: dict[str, Any]) -> datetime:
    """The deadline a receipt's 202 implies for the cycle it starts: received_at + timeout_seconds."""
    received_at = parse_timestamp(accepted["received_at"])
    assert received_at is not None, accepted
    return received_at + timedelta(seconds=accepted["timeout_seconds"])


def flow_is(status: str, **fields: object) -> Callable[[tuple[int, dict[str, Any]]], bool]:
    """Accepts a ``GET /api/v1/flows/{ref}`` answer whose flow has ``status`` and ``fields``.

    The flow's status and its incident reach the read model from two topics, so the incident
    document may follow an `incident` status by a moment (the API says so): wait for both.
    """
    def accept(answer: tuple[int, dict[str, Any]]) -> bool:
        code, doc = answer
        recorded = status != "incident" or "incident" in doc
        return (code == 200 and doc.get("status") == status and recorded
                and all(doc.get(k) == v for k, v in fields.items()))
    return accept


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], *, timeout: float = 20.0,
                     interval: float = 0.1) -> T:
    """Poll until ``accept(probe())``; on timeout fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value
