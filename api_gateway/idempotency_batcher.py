"""Idempotency claims and completions of concurrent ingest requests, one statement per batch.

Each ingest request claims its key before publishing and completes it after Kafka's ack: two
database round trips. Under load, the requests that arrive while a statement is running are
gathered and go in the next one (``store.idempotency.claim_many`` / ``complete_claimed``), so the
database sees a few multi-row statements instead of one per request. A request alone waits for
nothing: its statement starts at the end of the event-loop turn that submitted it.

The outcomes are those of ``claim`` and ``complete`` one by one; the database still arbitrates
between replicas.

A completion comes after Kafka's ack, when the request's answer is already decided: it never fails
the request. One that fails for a passing reason (the database restarting) is tried again in the
background until the claim's lease runs out; after that, a retry of the request takes the claim
over and gives the same answer (``store.idempotency``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Generic, TypeVar

from common.faults import Backoff, is_transient
from store.db import Pool
from store.idempotency import LEASE, Claim, ClaimRequest, StoredResponse, claim_many, complete_claimed

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# Enough to cover a burst of concurrent requests; a bigger batch only makes one statement slower.
MAX_BATCH = 256
# Statements of one kind running at once. One: the requests that arrive while it runs all go in the
# next, so under load there are half as many statements, each twice the size, and a statement
# costs the gateway far more CPU than a row of it (interleaved bench/ingest.py runs: 0.31-0.32 ms
# of gateway CPU per request with two at a time, 0.28 with one).
MAX_IN_FLIGHT = 1
# How long a request's 202 waits for its completion at most: ample for a healthy database, and a
# database that is away (its pool waits up to 30 s for a connection) does not hold the answer.
COMPLETION_WAIT_SECONDS = 1.0


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
        return await self.enqueue(item)

    def enqueue(self, item: Item) -> asyncio.Future[Result]:
        """The future of ``item``'s result, for a caller that may stop waiting before it is run."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._schedule()
        return future

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
            # Every request of the batch gets the error, as for a failed single statement.
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
        self._retrying: set[asyncio.Task[None]] = set()

    async def claim(self, scope: str, key: str, fingerprint: bytes, answer: StoredResponse,
                    received_at: datetime) -> Claim:
        """Claim the key, storing ``answer``: the response once the request's action succeeded,
        for the request ``received_at``."""
        return await self._claims.submit(ClaimRequest(scope, key, fingerprint, answer, received_at))

    async def complete(self, scope: str, key: str) -> None:
        """Make the claimed key's stored answer final: waits up to ``COMPLETION_WAIT_SECONDS``
        for it, and never raises. A completion that failed for a passing reason is tried again
        in the background."""
        completion = self._completions.enqueue((scope, key))
        completion.add_done_callback(partial(self._retry_if_failed, scope, key))
        await asyncio.wait({completion}, timeout=COMPLETION_WAIT_SECONDS)

    def _retry_if_failed(self, scope: str, key: str, completion: asyncio.Future[None]) -> None:
        exc = None if completion.cancelled() else completion.exception()
        if exc is None:
            return
        if not isinstance(exc, Exception) or not is_transient(exc):
            _log_abandoned(scope, key, exc)
            return
        log.warning("could not complete idempotency key %s of %s (%s); trying again in the background",
                    key, scope, exc)
        task = asyncio.create_task(self._complete_in_background(scope, key))
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    async def _complete_in_background(self, scope: str, key: str) -> None:
        loop = asyncio.get_running_loop()
        # Past the lease a retry of the request may own the claim; it needs no help from us.
        give_up_at = loop.time() + LEASE.total_seconds()
        backoff = Backoff()
        while True:
            await backoff.wait()
            try:
                await self._completions.submit((scope, key))
                return
            except Exception as exc:
                if not is_transient(exc) or loop.time() >= give_up_at:
                    _log_abandoned(scope, key, exc)
                    return

    async def drain(self) -> None:
        """Wait until every claim and completion submitted so far has been run."""
        await self._claims.drain()
        await self._completions.drain()

    async def close(self) -> None:
        """Before the pool closes: drain, then stop retrying completions in the background (their
        claims' leases run out, and retries of those requests take them over)."""
        await self.drain()
        if self._retrying:
            log.warning("stopped retrying %d idempotency completions; retries of those requests will take "
                        "their keys over once the leases run out", len(self._retrying))
            for task in self._retrying:
                task.cancel()
            await asyncio.wait(set(self._retrying))

    async def _claim_many(self, requests: list[ClaimRequest]) -> list[Claim]:
        async with self._pool.connection() as conn:
            return await claim_many(conn, requests)

    async def _complete_many(self, claims: list[tuple[str, str]]) -> list[None]:
        async with self._pool.connection() as conn:
            await complete_claimed(conn, claims)
        return [None] * len(claims)


def _log_abandoned(scope: str, key: str, exc: BaseException) -> None:
    log.error("gave up completing idempotency key %s of %s (%s); its signal is in Kafka, and a retry of "
              "the request will take the key over once its lease runs out", key, scope, exc)
