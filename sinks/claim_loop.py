"""The claim, poll and wake loop of the callbacks and alerts sinks: claim the due rows with a lease,
take each, and look again at once when a whole batch came, else after a poll or as soon as woken
(the consumer stored new work). Replicas share the rows: a claim takes only rows that are due and
not leased, so each is taken by one process at a time, and a process that dies leaves its rows to
be claimed again once their lease runs out.

Each piece of work records its attempt before making it (``store/attempts.py``). A claimed row
whose attempt was begun and never finished (its process died) is ``interrupted``: it is recorded
as such instead of being attempted, and the next claim attempts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Generic, Protocol, TypeVar

from common.faults import Backoff
from sinks.retrying import log_failure
from store.db import Connection, Pool

POLL_SECONDS = 1.0
CLAIM_BATCH = 20


class Claimed(Protocol):
    @property
    def interrupted(self) -> bool:
        """Its last attempt was begun and has no outcome: the process making it died."""


C = TypeVar("C", bound=Claimed)
C_co = TypeVar("C_co", bound=Claimed, covariant=True)


class Claim(Protocol[C_co]):
    """The due rows, at most ``limit``, each leased for ``lease`` (``store``'s ``claim_due``)."""

    def __call__(self, conn: Connection, *, limit: int, lease: timedelta) -> Awaitable[Sequence[C_co]]: ...


class ClaimLoop(Generic[C]):
    """``claim`` due rows (at most ``CLAIM_BATCH``, leased for ``lease``), then ``attempt`` each
    (given the ``time.monotonic()`` its lease ends) or ``record_interrupted`` it, all at once.
    One that fails stays its own: the rest of the round goes on, and it comes back after its lease.
    ``before_round``, if given, runs first in every round."""

    def __init__(self, pool: Pool, *, name: str, lease: timedelta,
                 claim: Claim[C],
                 attempt: Callable[[C, float], Awaitable[None]],
                 record_interrupted: Callable[[C], Awaitable[None]],
                 describe: Callable[[C], str],
                 before_round: Callable[[], Awaitable[None]] | None = None):
        self.name = name
        self._pool = pool
        self._lease = lease
        self._claim = claim
        self._attempt = attempt
        self._record_interrupted = record_interrupted
        self._describe = describe
        self._before_round = before_round
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New work was stored: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Round after round until cancelled. A round that fails is logged and the next one waits
        with backoff while failures last: the loop itself never ends by itself."""
        backoff = Backoff()
        while True:
            # Cleared before the round, so a wake-up that comes during it is not lost.
            self._wake.clear()
            try:
                more = await self._round()
            except Exception as exc:
                log_failure(f"{self.name} round failed; trying again", exc)
                await backoff.wait()
                continue
            backoff = Backoff()
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _round(self) -> bool:
        """True when more may be due (a whole batch was claimed)."""
        if self._before_round is not None:
            await self._before_round()
        # Taken before the claim, so it never ends after the lease the claim writes.
        leased_until = time.monotonic() + self._lease.total_seconds()
        async with self._pool.connection() as conn:
            claimed = await self._claim(conn, limit=CLAIM_BATCH, lease=self._lease)
        await asyncio.gather(*(self._take(item, leased_until) for item in claimed))
        return len(claimed) == CLAIM_BATCH

    async def _take(self, item: C, leased_until: float) -> None:
        try:
            await (self._record_interrupted(item) if item.interrupted else self._attempt(item, leased_until))
        except Exception as exc:
            log_failure(f"{self._describe(item)}: failed; taken again after its lease", exc)
