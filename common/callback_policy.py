"""When a repair callback is retried, and after how long. Pure: no I/O, no clock.

Network errors, 408, 429 and 5xx are passing trouble and retried on the configured schedule (each
delay with ±10 % jitter, so many deliveries failing together do not come back together); a longer
``Retry-After`` is honoured up to the schedule's longest step. Any other answer but 2xx, redirects
included, will not change by asking again: it fails at once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import Enum

JITTER = 0.1
# How long a receiver has to answer one attempt; no answer by then is retried like a 5xx.
ATTEMPT_TIMEOUT_SECONDS = 10.0


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAIL = "fail"


def verdict(http_status: int | None) -> Verdict:
    """``None``: no answer (network error, timeout, refused target)."""
    if http_status is None or http_status in (408, 429) or 500 <= http_status <= 599:
        return Verdict.RETRY
    return Verdict.DELIVERED if 200 <= http_status <= 299 else Verdict.FAIL


def retry_delay(schedule: Sequence[float], attempts_made: int, retry_after: float | None,
                rng: random.Random) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` attempts; ``None`` once the schedule
    is used up."""
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds (RFC 9110: delay-seconds or an HTTP date); ``None`` if absent or
    not understood."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())
