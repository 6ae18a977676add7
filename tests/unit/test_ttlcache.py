"""The read-through TTL cache: entries live for the TTL, and concurrent misses of one key make one
load (under load, credential lookups of an expired key would otherwise each query the database)."""

from __future__ import annotations

import asyncio

import pytest

from sendpromptly.ttlcache import TTLCache

TTL = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_calls_for_one_key_share_one_lookup_and_later_calls_look_up_again() -> None:
    calls: list[str] = []
    clock = Clock()

    async def load(key: str) -> str:
        calls.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    async def scenario() -> None:
        cache = TTLCache(load, TTL, clock=clock)
        assert await asyncio.gather(*(cache.get("a") for _ in range(5)), cache.get("b")) == ["A"] * 5 + ["B"]
        assert calls == ["a", "b"]
        clock.now += TTL - 0.001
        assert await cache.get("a") == "A"  # still fresh: no lookup
        assert calls == ["a", "b"]
        clock.now += 0.001
        assert await cache.get("a") == "A"  # expired: looked up again
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
        cache = TTLCache(load, TTL)
        results = await asyncio.gather(cache.get("a"), cache.get("a"), return_exceptions=True)
        assert all(isinstance(result, ConnectionError) for result in results)
        assert await cache.get("a") == "a"
        assert attempts == 2

    asyncio.run(scenario())


def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    async def load(key: str) -> str:
        await asyncio.sleep(0.02)
        return key

    async def scenario() -> None:
        cache = TTLCache(load, TTL)
        first = asyncio.ensure_future(cache.get("a"))
        second = asyncio.ensure_future(cache.get("a"))
        await asyncio.sleep(0.005)
        first.cancel()
        assert await second == "a"
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(scenario())
