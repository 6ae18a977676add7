"""How the sinks outlast passing trouble (``common.faults``): one piece of work retried while
its failures are transient, and the background loops that go on round after round whatever fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from common.faults import Backoff, describe, is_transient
from store.db import Pool

log = logging.getLogger(__name__)

T = TypeVar("T")


async def retry_transient(operation: Callable[[], Awaitable[T]], *, what: str,
                          deadline: float | None = None) -> T:
    """``operation``'s result, tried again with backoff after each transient failure. A failure
    that is not transient is raised at once, and a transient one once ``deadline`` (a
    ``time.monotonic()`` value) has passed."""
    backoff = Backoff()
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc) or (deadline is not None and time.monotonic() >= deadline):
                raise
            log.warning("%s failed (%s); trying again", what, describe(exc))
            await backoff.wait()


async def run_rounds(pool: Pool, work: Callable[[], Awaitable[bool]], wake: asyncio.Event, *,
                     name: str, poll_seconds: float) -> None:
    """Call ``work`` round after round until the pool closes: at once again when it says more is
    due, else after ``poll_seconds`` or as soon as ``wake`` is set. A round that fails is logged
    and the next one waits with backoff while failures last: the loop itself never dies, since
    nothing else would start it again in this process."""
    backoff = Backoff()
    while not pool.closed:
        # Cleared before the round, so a wake-up that comes during it is not lost.
        wake.clear()
        try:
            more = await work()
        except Exception as exc:
            log_failure(f"{name} round failed; trying again", exc)
            await backoff.wait()
            continue
        backoff = Backoff()
        if not more:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_seconds)


async def take_leased(what: str, *, interrupted: bool, record_interrupted: Callable[[], Awaitable[None]],
                      attempt: Callable[[], Awaitable[None]]) -> None:
    """One claimed piece of work whose attempts are recorded before they are made
    (``store/attempts.py``): the interrupted attempt the claim found recorded, else the next
    attempt made. Its failure stays its own: the rest of the round goes on, and this one is taken
    again when its lease runs out (an attempt it began is then recorded as interrupted)."""
    try:
        await (record_interrupted() if interrupted else attempt())
    except Exception as exc:
        log_failure(f"{what}: failed; taken again after its lease", exc)


def log_failure(what: str, exc: BaseException) -> None:
    """A transient failure in one line; any other with its traceback, as it is a bug to fix."""
    if is_transient(exc):
        log.warning("%s: %s", what, describe(exc))
    else:
        log.error("%s", what, exc_info=exc)
