"""Concurrent lookups of one key share one call.

The credential caches expire every few seconds; under load, the dozens of requests in flight that
find an entry expired at the same moment would each look it up in the database. Sharing the
first lookup makes that one query, and the others wait for its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def single_flight(load: Callable[[K], Awaitable[V]]) -> Callable[[K], Awaitable[V]]:
    """``load``, with the calls made while one for the same key runs waiting for that one."""
    running: dict[K, asyncio.Future[V]] = {}

    async def load_shared(key: K) -> V:
        future = running.get(key)
        if future is None:
            future = running[key] = asyncio.ensure_future(load(key))
            future.add_done_callback(lambda _: running.pop(key, None))
        # shield: a caller that gives up (its request was cancelled) does not cancel the others'.
        return await asyncio.shield(future)

    return load_shared
