"""The deadline index: which pending flows this worker owns and when each one's deadline passes.

Stream-time windows only fire when new events advance time, and faust's windowed tables neither
fire for windows recovered from the changelog nor carry the value (faust-streaming #385, #193), so
the agents keep their own index: a heap of (deadline, key) per partition, rebuilt from the table
after every rebalance and scanned by a timer up to each partition's cutoff (``agents.watermark``:
the wall clock while the partition's results are all applied, else how far they are). Due flows are
handed back to the agent in batches, one per partition, on that partition (tables may only change
inside stream processing). A batch can be lost (a crash between timer and agent), so a fired entry
comes due again until the flow stops being pending.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
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
        # One heap per partition: each partition is scanned up to a cutoff of its own.
        self._heaps: dict[int, list[tuple[datetime, bytes]]] = {}
        # key -> (deadline, partition, next time it is due); the heaps may hold stale entries,
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
        heapq.heappush(self._heaps.setdefault(partition, []), (deadline, key))

    def forget(self, key: bytes) -> None:
        self._pending.pop(key, None)

    def clear(self) -> int:
        """Empty the index for a rebuild; returns the rebuild's generation."""
        self._heaps.clear()
        self._pending.clear()
        self.generation += 1
        return self.generation

    def due(self, cutoffs: Mapping[int, datetime], now: datetime) -> list[Due]:
        """Flows whose deadline (or re-fire time) is at or before their partition's cutoff; a
        partition without a cutoff is not judged this time. Each comes due again ``REFIRE_AFTER``
        after ``now`` unless ``forget`` or ``track`` says otherwise by then."""
        found: list[Due] = []
        for partition, cutoff in cutoffs.items():
            heap = self._heaps.get(partition)
            while heap and heap[0][0] <= cutoff:
                at, key = heapq.heappop(heap)
                entry = self._pending.get(key)
                if entry is None or entry[2] != at or entry[1] != partition:
                    continue  # forgotten, or re-tracked with another time: a stale heap entry
                deadline, _, _ = entry
                found.append(Due(key, deadline, partition))
                refire = now + REFIRE_AFTER
                self._pending[key] = (deadline, partition, refire)
                heapq.heappush(heap, (refire, key))
        return found

    def compact(self) -> None:
        """Drop stale heap entries when they outnumber the live ones (memory stays bounded)."""
        if sum(len(heap) for heap in self._heaps.values()) > 2 * len(self._pending) + 1024:
            self._heaps = {}
            for key, (_, partition, due_at) in self._pending.items():
                self._heaps.setdefault(partition, []).append((due_at, key))
            for heap in self._heaps.values():
                heapq.heapify(heap)


def by_partition(due: list[Due], max_keys: int) -> Iterator[tuple[int, tuple[bytes, ...]]]:
    """The due flows' keys grouped by partition, in the order they came due, ``max_keys`` at most
    to a group."""
    keys: dict[int, list[bytes]] = {}
    for entry in due:
        keys.setdefault(entry.partition, []).append(entry.key)
    for partition, group in keys.items():
        for start in range(0, len(group), max_keys):
            yield partition, tuple(group[start:start + max_keys])
