"""Concurrent credential lookups of one key make one call."""

from __future__ import annotations

import asyncio

import pytest

from api_gateway.single_flight import single_flight


def test_concurrent_calls_for_one_key_share_one_lookup_and_later_calls_look_up_again() -> None:
    calls: list[str] = []

    async def load(key: str) -> str:
        calls.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    async def scenario() -> None:
        shared = single_flight(load)
        assert await asyncio.gather(*(shared("a") for _ in range(5)), shared("b")) == ["A"] * 5 + ["B"]
        assert calls == ["a", "b"]
        assert await shared("a") == "A"
        assert calls == ["a", "b", "a"]

    asyncio.run(scenario())


def test_a_failed_lookup_fails_every_waiter_and_is_not_remembered() -> None:
    attempts = 0

    async def load(key: str) -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("database down")
        return key

    async def scenario() -> None:
        shared = single_flight(load)
        results = await asyncio.gather(shared("a"), shared("a"), return_exceptions=True)
        assert all(isinstance(result, ConnectionError) for result in results)
        assert await shared("a") == "a"

    asyncio.run(scenario())


def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    async def load(key: str) -> str:
        await asyncio.sleep(0.02)
        return key

    async def scenario() -> None:
        shared = single_flight(load)
        first = asyncio.ensure_future(shared("a"))
        second = asyncio.ensure_future(shared("a"))
        await asyncio.sleep(0.005)
        first.cancel()
        assert await second == "a"
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(scenario())
