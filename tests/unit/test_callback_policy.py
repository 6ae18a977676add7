"""Which answers are retried, after how long, and when the schedule runs out."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from common.callback_policy import Verdict, parse_retry_after, retry_delay, verdict

SCHEDULE = (5.0, 300.0, 1800.0)


@pytest.mark.parametrize(("status", "expected"), [
    (None, Verdict.RETRY), (408, Verdict.RETRY), (429, Verdict.RETRY), (500, Verdict.RETRY),
    (503, Verdict.RETRY),
    (200, Verdict.DELIVERED), (204, Verdict.DELIVERED),
    (301, Verdict.FAIL), (302, Verdict.FAIL), (307, Verdict.FAIL), (400, Verdict.FAIL), (401, Verdict.FAIL),
    (404, Verdict.FAIL), (410, Verdict.FAIL), (422, Verdict.FAIL),
])
def test_verdicts(status: int | None, expected: Verdict) -> None:
    assert verdict(status) is expected


def test_delays_follow_the_schedule_with_jitter_and_then_stop() -> None:
    rng = random.Random(7)
    for attempts_made, base in enumerate(SCHEDULE, start=1):
        delays = [retry_delay(SCHEDULE, attempts_made, None, rng) for _ in range(200)]
        assert all(d is not None and 0.9 * base <= d <= 1.1 * base for d in delays)
        assert len(set(delays)) > 100  # jittered, not one value
    assert retry_delay(SCHEDULE, len(SCHEDULE) + 1, None, rng) is None


def test_retry_after_is_honoured_up_to_the_longest_step() -> None:
    rng = random.Random(7)
    assert retry_delay(SCHEDULE, 1, 120.0, rng) == 120.0
    assert retry_delay(SCHEDULE, 1, 10 * 86400.0, rng) == 1800.0
    second = retry_delay(SCHEDULE, 2, 1.0, rng)
    assert second is not None and second >= 270.0  # a shorter one does not shorten the schedule


def test_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
