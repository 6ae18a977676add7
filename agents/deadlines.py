"""The deadline index: which pending flows this worker owns and when each one's deadline passes.

Stream-time windows only fire when new events advance time, and faust's windowed tables neither
fire for windows recovered from the changelog nor carry the value (faust-streaming #385, #193), so
the agents keep their own wall-clock index: a heap of (deadline, key), rebuilt from the table after
every rebalance and scanned by a timer. Due flows are handed back to the agent in batches, one per
partition, on that partition (tables may only change inside stream processing). A batch can be lost
(a crash between timer and agent), so a fired entry comes due again until the flow stops being
pending.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

# How long after a flow was sent out as due it comes due again if it is still pending by then.
REFIRE_AFTER = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Due:
    key: bytes
    deadline: datetime
    partition: int


class DeadlineIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, bytes]] = []
        # key -> (deadline, partition, next time it is due); the heap may hold stale entries,
        # this dict is the truth.
        self._pending: dict[bytes, tuple[datetime, int, datetime]] = {}
        # Bumped by every ``clear``: a rebuild that yields can tell a newer one has started.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, key: bytes, deadline: datetime, partition: int) -> None:
        current = self._pending.get(key)
        if current is not None and current[0] == deadline and current[1] == partition:
            return
        self._pending[key] = (deadline, partition, deadline)
        heapq.heappush(self._heap, (deadline, key))

    def forget(self, key: bytes) -> None:
        self._pending.pop(key, None)

    def clear(self) -> int:
        """Empty the index for a rebuild; returns the rebuild's generation."""
        self._heap.clear()
        self._pending.clear()
        self.generation += 1
        return self.generation

    def due(self, now: datetime) -> list[Due]:
        """Flows whose deadline (or re-fire time) has come; each comes due again after
        ``REFIRE_AFTER`` unless ``forget`` or ``track`` says otherwise by then."""
        found: list[Due] = []
        while self._heap and self._heap[0][0] <= now:
            at, key = heapq.heappop(self._heap)
            entry = self._pending.get(key)
            if entry is None or entry[2] != at:
                continue  # forgotten, or re-tracked with another time: a stale heap entry
            deadline, partition, _ = entry
            found.append(Due(key, deadline, partition))
            refire = now + REFIRE_AFTER
            self._pending[key] = (deadline, partition, refire)
            heapq.heappush(self._heap, (refire, key))
        return found

    def compact(self) -> None:
        """Drop stale heap entries when they outnumber the live ones (memory stays bounded)."""
        if len(self._heap) > 2 * len(self._pending) + 1024:
            self._heap = [(entry[2], key) for key, entry in self._pending.items()]
            heapq.heapify(self._heap)


def by_partition(due: list[Due], max_keys: int) -> Iterator[tuple[int, tuple[bytes, ...]]]:
    """The due flows' keys grouped by partition, in the order they came due, ``max_keys`` at most
    to a group."""
    keys: dict[int, list[bytes]] = {}
    for entry in due:
        keys.setdefault(entry.partition, []).append(entry.key)
    for partition, group in keys.items():
        for start in range(0, len(group), max_keys):
            yield partition, tuple(group[start:start + max_keys])
