"""A tiny async read-through cache with a time-to-live.

Used where a short staleness is part of the contract, e.g. API-key lookups (a revoked key is
refused within 5 s on every replica) and the agents' view of project settings.

Concurrent misses of one key share one load: when an entry expires under load, the dozens of
requests in flight that find it expired at the same moment would otherwise each query the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, load: Callable[[K], Awaitable[V]], ttl_seconds: float, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self._load = load
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load_and_keep(key))
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        # shield: a caller that gives up (its request was cancelled) does not cancel the others'.
        return await asyncio.shield(loading)

    async def _load_and_keep(self, key: K) -> V:
        # The entry's age counts from before the load, so it is never staler than the TTL.
        started = self._clock()
        value = await self._load(key)
        if len(self._entries) >= self._max:
            # Dropping everything is crude but bounded and rare; a hot working set refills in one TTL.
            self._entries.clear()
        self._entries[key] = (started + self._ttl, value)
        return value
