"""A tiny async read-through cache with a time-to-live.

Used where a short staleness is part of the contract, e.g. API-key lookups (a revoked key is
refused within 5 s on every replica) and the agents' view of project settings.

Concurrent misses of one key share one load: when an entry expires under load, the dozens of
requests in flight that find it expired at the same moment would otherwise each query the database.
Sharing makes a failed load fail every one of them, so a load that fails for a passing reason
(``common.faults.is_transient``: a connection the database dropped, a restart) is tried again
after a short pause, and if it still fails an expired entry is served for up to ``stale_seconds``
more. Serving a stale credential while the database is away lets no revoked key write anything:
every write needs the database too, and answers 503 until it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from common.faults import Backoff, is_transient

K = TypeVar("K")
V = TypeVar("V")

# Retries of a load that failed for a passing reason, and the first pause: short, because every
# request waiting on the load waits for them too (0.05 s, then 0.1 s, with jitter). Only while it
# fails fast, as with a dropped connection: a load that failed after waiting (for a pool that had
# no connection to give, say) has had its chance.
LOAD_RETRIES = 2
FIRST_RETRY_DELAY = 0.05
RETRY_WITHIN_SECONDS = 1.0
# How long past its expiry an entry may stand in for a load that keeps failing for a passing reason.
STALE_SECONDS = 60.0


class TTLCache(Generic[K, V]):
    def __init__(self, load: Callable[[K], Awaitable[V]], ttl_seconds: float, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic, *, stale_seconds: float = STALE_SECONDS):
        self._load = load
        self._ttl = ttl_seconds
        self._stale = stale_seconds
        self._max = max_entries
        self._clock = clock
        # key -> (expires_at, value); expired entries stay until replaced, as a stand-in (see above).
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
        try:
            value = await self._load_retrying(key)
        except Exception as exc:
            stale = self._entries.get(key)
            if stale is None or not is_transient(exc) or stale[0] + self._stale <= self._clock():
                raise
            return stale[1]
        if len(self._entries) >= self._max:
            # Dropping everything is crude but bounded and rare; a hot working set refills in one TTL.
            self._entries.clear()
        self._entries[key] = (started + self._ttl, value)
        return value

    async def _load_retrying(self, key: K) -> V:
        backoff = Backoff(first=FIRST_RETRY_DELAY)
        started = self._clock()
        while True:
            try:
                return await self._load(key)
            except Exception as exc:
                if (backoff.attempts >= LOAD_RETRIES or not is_transient(exc)
                        or self._clock() - started > RETRY_WITHIN_SECONDS):
                    raise
            await backoff.wait()
