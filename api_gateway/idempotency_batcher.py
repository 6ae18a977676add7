"""Idempotency claims and completions of concurrent ingest requests, one statement per batch.

Each ingest request claims its key before publishing and completes it after Kafka's ack: two
database round trips. Under load, the requests that arrive while a statement is running are
gathered and go in the next one (``store.idempotency.claim_many`` / ``complete_claimed``), so the
database sees a few multi-row statements instead of one per request. A request alone waits for
nothing: its statement starts at the end of the event-loop turn that submitted it.

The outcomes are those of ``claim`` and ``complete`` one by one; the database still arbitrates
between replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from store.db import Pool
from store.idempotency import Claim, ClaimRequest, StoredResponse, claim_many, complete_claimed

Item = TypeVar("Item")
Result = TypeVar("Result")

# Enough to cover a burst of concurrent requests; a bigger batch only makes one statement slower.
MAX_BATCH = 256
# Statements of one kind running at once. One: the requests that arrive while it runs all go in the
# next, so under load there are half as many statements, each twice the size, and a statement
# costs the gateway far more CPU than a row of it (interleaved bench/ingest.py runs: 0.31-0.32 ms
# of gateway CPU per request with two at a time, 0.28 with one).
MAX_IN_FLIGHT = 1


class _Batches(Generic[Item, Result]):
    """Runs ``run`` on lists of submitted items: at most ``max_in_flight`` lists at a time, each
    of everything submitted meanwhile (up to ``max_batch``)."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], *,
                 max_batch: int, max_in_flight: int):
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        # call_soon: the other requests handled in this event-loop turn join the batch.
        if not self._scheduled and self._waiting and len(self._running) < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._running) < self._max_in_flight:
            batch, self._waiting = self._waiting[:self._max_batch], self._waiting[self._max_batch:]
            task = asyncio.create_task(self._settle(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._schedule()

    async def _settle(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except BaseException as exc:
            # Every request of the batch gets the error (a 500, as for a failed single statement).
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the request was cancelled meanwhile
                future.set_result(result)

    async def drain(self) -> None:
        """Wait until everything submitted so far has been run."""
        while self._waiting or self._running:
            if self._running:
                await asyncio.wait(set(self._running))
            else:
                await asyncio.sleep(0)


class IdempotencyBatcher:
    """``claim`` and ``complete`` for the ingest path, batched across concurrent requests."""

    def __init__(self, pool: Pool, *, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT):
        self._pool = pool
        self._claims = _Batches(self._claim_many, max_batch=max_batch, max_in_flight=max_in_flight)
        self._completions = _Batches(self._complete_many, max_batch=max_batch, max_in_flight=max_in_flight)

    async def claim(self, scope: str, key: str, fingerprint: bytes, answer: StoredResponse) -> Claim:
        """Claim the key, storing ``answer``: the response once the request's action succeeded."""
        return await self._claims.submit(ClaimRequest(scope, key, fingerprint, answer))

    async def complete(self, scope: str, key: str) -> None:
        """Make the claimed key's stored answer final."""
        await self._completions.submit((scope, key))

    async def drain(self) -> None:
        await self._claims.drain()
        await self._completions.drain()

    async def _claim_many(self, requests: list[ClaimRequest]) -> list[Claim]:
        async with self._pool.connection() as conn:
            return await claim_many(conn, requests)

    async def _complete_many(self, claims: list[tuple[str, str]]) -> list[None]:
        async with self._pool.connection() as conn:
            await complete_claimed(conn, claims)
        return [None] * len(claims)

