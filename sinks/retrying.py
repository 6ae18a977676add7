"""How the sinks outlast passing trouble (``common.faults``): one piece of work retried while
its failures are transient, and failures logged by what they are (the loops that go on whatever
fails: ``sinks/claim_loop.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from common.faults import Backoff, describe, is_transient

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


def log_failure(what: str, exc: BaseException) -> None:
    """A transient failure in one line; any other with its traceback, as it is a bug to fix."""
    if is_transient(exc):
        log.warning("%s: %s", what, describe(exc))
    else:
        log.error("%s", what, exc_info=exc)
