"""Which failures pass by themselves, and how long to wait before trying again.

Every consumer here acknowledges a message only once it was handled or dead-lettered with a
reason. The choice between the two hangs on one question: would trying again help? A database
restarting, a broker that is away, a connection the pool handed out dead: yes — retry the same
message, with backoff, for as long as it takes. A message that trips a bug or breaks a constraint
fails the same way every time: dead-letter it with the reason, so one message never stalls a
partition forever.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from aiokafka import errors as aiokafka_errors


def is_transient(exc: BaseException) -> bool:
    """True when the same work may well succeed if tried again in a moment."""
    # The errors that know say so themselves: aiokafka's, and the store's DatabaseUnavailable
    # (store/errors.py), which this module sits below.
    if getattr(exc, "retriable", False):
        return True
    if isinstance(exc, aiokafka_errors.KafkaError):
        return isinstance(exc, aiokafka_errors.KafkaConnectionError | aiokafka_errors.KafkaTimeoutError)
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def describe(exc: BaseException) -> str:
    """A dead letter's reason detail: the exception's type and message, bounded."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


# One generator for every backoff: creating one per Backoff (seeded from os.urandom) cost 15 µs,
# and the agents make a Backoff for every message they handle.
_JITTER = random.Random()  # noqa: S311 (jitter, not a secret)


@dataclass
class Backoff:
    """Exponential backoff with jitter: about 0.1 s, 0.2 s, ... up to ``cap`` seconds."""

    first: float = 0.1
    cap: float = 5.0
    attempts: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.first * (2 ** self.attempts))
        self.attempts += 1
        return _JITTER.uniform(ceiling / 2, ceiling)

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())
