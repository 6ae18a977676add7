"""A tiny async read-through cache with a time-to-live.

Used where a short staleness is part of the contract, e.g. API-key lookups (a revoked key is
refused within 5 s on every replica) and the agents' view of project settings.
"""

from __future__ import annotations

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

    async def get(self, key: K) -> V:
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await self._load(key)
        if len(self._entries) >= self._max:
            # Dropping everything is crude but bounded and rare; a hot working set refills in one TTL.
            self._entries.clear()
        self._entries[key] = (now + self._ttl, value)
        return value
