"""What the load generator planned and what the gateway accepted, flow by flow: the ground truth the
reconciler judges the stack against. Times are wall-clock seconds (``time.time()``), the clock the
gateway stamps deadlines with on this same host."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tests.support.api import deadline_of


class Outcome(Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NONE = "none"  # no result is ever sent: the deadline must open a timeout incident


@dataclass(frozen=True)
class FlowPlan:
    reference: str
    outcome: Outcome
    timeout_seconds: int
    result_delay: float  # after the receipt's 202
    reprocess: bool  # an operator reprocesses its incident once it is open


@dataclass
class Delivery:
    """One request, retried with one Idempotency-Key and body until a 202 or the end of the run.

    ``first_sent_at`` is when the first try left: an earlier try may have reached Kafka even though
    its answer was lost (a gateway killed between the broker's ack and the 202), so the signal's
    arrival lies anywhere between ``first_sent_at`` and ``accepted_at``."""

    first_sent_at: float
    accepted_at: float | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    tries: int = 0

    @property
    def accepted(self) -> bool:
        return self.accepted_at is not None


@dataclass
class FlowRecord:
    plan: FlowPlan
    receipt: Delivery | None = None
    result: Delivery | None = None
    reprocess: Delivery | None = None

    @property
    def deadline(self) -> float | None:
        """The deadline the receipt's 202 implies (each flow here is the first cycle of its reference)."""
        if self.receipt is None or not self.receipt.accepted:
            return None
        return deadline_of(self.receipt.answer).timestamp()

    @property
    def replay_id(self) -> str | None:
        if self.reprocess is None or not self.reprocess.accepted:
            return None
        return str(self.reprocess.answer["replay_id"])


def plan_flows(count: int, *, seed: int, run_id: str) -> list[FlowPlan]:
    """A known mix: 80 % succeeded, 10 % failed (a fifth of those reprocessed), 10 % no result;
    deadlines 20-40 s; results 1-3 s after the receipt."""
    rng = random.Random(seed)
    plans = []
    for n in range(count):
        slot = n % 10
        outcome = Outcome.FAILED if slot == 0 else Outcome.NONE if slot == 1 else Outcome.SUCCEEDED
        plans.append(FlowPlan(reference=f"chaos_{run_id}_{n:06d}", outcome=outcome,
                              timeout_seconds=rng.randint(20, 40), result_delay=rng.uniform(1.0, 3.0),
                              reprocess=outcome is Outcome.FAILED and n % 50 == 0))
    return plans
