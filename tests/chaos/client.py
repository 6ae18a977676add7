"""An HTTP client as the contract asks apps to behave: every POST carries an Idempotency-Key, and a
503, a connection error or a timeout is retried with the same key and body, with backoff, until a
202 or the end of the run. Every answer other than a 202 is logged with its time for the report."""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.chaos.ground_truth import Delivery

# Retried like any careful client would; only some are answers the contract gives during a fault.
RETRIED = frozenset({409, 429, 500, 502, 503, 504})
# 503: Kafka unreachable. 409: the first request with this key is still being processed — this
# client gave up waiting on it (REQUEST_TIMEOUT) while the gateway still waits on Kafka.
EXPECTED_DURING_FAULTS = frozenset({409, 503})
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class OddAnswer:
    at: float
    path: str
    status: int  # 0: no answer (connection refused or reset, timeout)
    detail: str


@dataclass
class AnswerLog:
    odd: list[OddAnswer] = field(default_factory=list)

    def errors(self) -> list[OddAnswer]:
        """Answers a healthy or recovering gateway never gives: not 202, 409 or 503, not silence."""
        return [a for a in self.odd if a.status and a.status not in EXPECTED_DURING_FAULTS]


class RetryingClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, log: AnswerLog):
        self._session = session
        self._base_url = base_url
        self._log = log
        # Set when the load stops: requests still unanswered by then are given up.
        self.give_up_at = math.inf

    async def post(self, path: str, token: str, key: str, body: Any = None) -> Delivery:
        delivery = Delivery(first_sent_at=time.time())
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        backoff = BACKOFF_FIRST
        while not self.gave_up:
            delivery.tries += 1
            wait = backoff
            try:
                async with self._session.post(self._base_url + path, json=body, headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as answer:
                    document = await answer.json(content_type=None)
                    if answer.status == 202:
                        delivery.accepted_at = time.time()
                        delivery.answer = document
                        return delivery
                    self._log.odd.append(OddAnswer(time.time(), path, answer.status, str(document)[:300]))
                    if answer.status not in RETRIED:
                        return delivery
                    wait = max(wait, float(answer.headers.get("Retry-After", 0)))
            except (TimeoutError, aiohttp.ClientError, ValueError) as error:
                self._log.odd.append(OddAnswer(time.time(), path, 0, repr(error)[:300]))
            # Jitter: thousands of clients refused at the same moment must not come back together.
            await asyncio.sleep(min(wait, BACKOFF_MAX) * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX)
        return delivery

    @property
    def gave_up(self) -> bool:
        return time.time() >= self.give_up_at

    async def get(self, path: str, token: str) -> tuple[int, dict[str, Any]]:
        """One read, no retry; (0, {}) when no answer came."""
        try:
            async with self._session.get(self._base_url + path, headers={"Authorization": f"Bearer {token}"},
                                         timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as answer:
                return answer.status, await answer.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return 0, {}
