"""The read-through TTL cache: entries live for the TTL, and concurrent misses of one key make one
load (under load, credential lookups of an expired key would otherwise each query the database).
A load that fails for a passing reason is tried again, and an expired entry stands in for a while
if it keeps failing, so one dead connection does not fail every request waiting on the load."""

from __future__ import annotations

import asyncio

import pytest

from common.ttlcache import LOAD_RETRIES, RETRY_WITHIN_SECONDS, TTLCache
from store.errors import DatabaseUnavailable

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


class FlakyLoad:
    """A lookup that fails with ``error`` while ``failures`` lasts, then answers ``key.upper()``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self, key: str) -> str:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.failures:
            self.failures -= 1
            raise self.error
        return key.upper()


def test_a_lookup_that_fails_for_good_fails_every_waiter_at_once_and_is_not_remembered() -> None:
    load = FlakyLoad(1, ValueError("a bug: trying again would fail the same way"))

    async def scenario() -> None:
        cache = TTLCache(load, TTL)
        results = await asyncio.gather(cache.get("a"), cache.get("a"), return_exceptions=True)
        assert all(isinstance(result, ValueError) for result in results)
        assert load.calls == 1  # not tried again
        assert await cache.get("a") == "A"
        assert load.calls == 2

    asyncio.run(scenario())


def test_a_lookup_that_fails_for_a_passing_reason_is_tried_again_for_every_waiter() -> None:
    load = FlakyLoad(LOAD_RETRIES, DatabaseUnavailable("the connection was closed by the server"))

    async def scenario() -> None:
        cache = TTLCache(load, TTL)
        assert await asyncio.gather(*(cache.get("a") for _ in range(5))) == ["A"] * 5
        assert load.calls == LOAD_RETRIES + 1

    asyncio.run(scenario())


def test_a_lookup_that_keeps_failing_for_a_passing_reason_fails_when_nothing_stands_in() -> None:
    load = FlakyLoad(LOAD_RETRIES + 1, ConnectionError("database restarting"))

    async def scenario() -> None:
        cache = TTLCache(load, TTL)
        with pytest.raises(ConnectionError):
            await cache.get("a")
        assert load.calls == LOAD_RETRIES + 1

    asyncio.run(scenario())


def test_a_lookup_that_failed_only_after_waiting_is_not_tried_again() -> None:
    clock = Clock()

    class SlowFailure(FlakyLoad):
        async def __call__(self, key: str) -> str:
            clock.now += RETRY_WITHIN_SECONDS + 0.1  # waited for a pool that had nothing to give
            return await super().__call__(key)

    load = SlowFailure(1, DatabaseUnavailable("PoolTimeout: couldn't get a connection after 30.00 sec"))

    async def scenario() -> None:
        cache = TTLCache(load, TTL, clock=clock)
        with pytest.raises(DatabaseUnavailable):
            await cache.get("a")
        assert load.calls == 1

    asyncio.run(scenario())


def test_an_expired_entry_stands_in_for_a_lookup_that_keeps_failing_for_a_passing_reason() -> None:
    clock = Clock()
    load = FlakyLoad(0, ConnectionError("database restarting"))

    async def scenario() -> None:
        cache = TTLCache(load, TTL, clock=clock, stale_seconds=60)
        assert await cache.get("a") == "A"
        clock.now += TTL + 59.9
        load.failures = 2 * (LOAD_RETRIES + 1)
        assert await cache.get("a") == "A"  # stale, within the bound
        clock.now += 0.1
        with pytest.raises(ConnectionError):  # too stale to stand in
            await cache.get("a")
        assert await cache.get("a") == "A"  # the database is back: a fresh entry
        assert load.calls == 1 + 2 * (LOAD_RETRIES + 1) + 1

    asyncio.run(scenario())


def test_an_expired_entry_never_stands_in_for_a_lookup_that_fails_for_good() -> None:
    clock = Clock()
    load = FlakyLoad(0, ValueError("a bug"))

    async def scenario() -> None:
        cache = TTLCache(load, TTL, clock=clock)
        assert await cache.get("a") == "A"
        clock.now += TTL
        load.failures = 1
        with pytest.raises(ValueError):
            await cache.get("a")

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
