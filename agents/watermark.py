"""How far each partition's deadlines may be judged: never past the results the agents have applied.

A flow times out when no result came by its deadline. Judged by the wall clock alone, a worker that
is behind (after a broker outage, a restart, a burst) would open timeouts for flows whose results
are already in Kafka, just not applied yet. So each partition gets a cutoff, and a deadline is
judged only once it is at or before the cutoff:

- the partition's results are caught up (every record below the end offset the broker reported in
  its last fetch response has been applied): the cutoff is the time of that response. The consumer
  long-polls every half second while caught up, so this follows the wall clock and incidents open
  with no traffic at all; while the broker is away no responses come and the cutoff stands still;
- it is behind: the cutoff is the timestamp of the last result applied there, since every result
  before it in the log has been applied too;
- its end is not known yet (no fetch response since the assignment): no cutoff, nothing is judged.

Both less a small ``GRACE`` for clocks that differ between producers (records carry the producer's
time) and for a result whose send was under way as the broker answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

GRACE = timedelta(seconds=0.25)


@dataclass(frozen=True, slots=True)
class Applied:
    next_offset: int
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class PartitionEnd:
    """What the consumer knows of one results partition."""

    end: int  # the end offset in the broker's last fetch response
    answered_at: datetime  # when that response came
    start: int  # where this worker's consumption began (the committed offset)


class ResultsWatermark:
    """Per partition of the results topic, the last result the agents applied."""

    def __init__(self) -> None:
        self._applied: dict[int, Applied] = {}

    def applied(self, partition: int, offset: int, timestamp: datetime) -> None:
        self._applied[partition] = Applied(offset + 1, timestamp)

    def cutoffs(self, ends: Mapping[int, PartitionEnd]) -> dict[int, datetime]:
        """Each partition's cutoff, for the partitions whose end is known."""
        cutoffs: dict[int, datetime] = {}
        for partition, known in ends.items():
            applied = self._applied.get(partition)
            position = max(applied.next_offset if applied else 0, known.start)
            if position >= known.end:
                cutoffs[partition] = known.answered_at - GRACE
            elif applied is not None:
                cutoffs[partition] = applied.timestamp - GRACE
        return cutoffs
