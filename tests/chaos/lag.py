"""Is every consumer caught up? Sampled from outside, from Kafka itself: a consumer group is caught
up at time t when it has committed everything that was on its partitions ``budget`` seconds before
t — "less than 2 s behind", whatever the rate of its topics."""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from harness.stack import SINK_NAMES
from topics.catalog import ALL_TOPICS

SAMPLE_SECONDS = 0.5
CAUGHT_UP_SECONDS = 2.0
# A faust worker commits its offsets every 2.8 s (broker_commit_interval), so its committed offset
# trails that much behind even when it has processed everything.
FAUST_COMMIT_SECONDS = 2.8
_ADMIN_TIMEOUT = 2.0

Offsets = dict[tuple[str, int], int]


def consumer_groups(topic_prefix: str) -> dict[str, float]:
    """Every consumer group of the stack, with its lag budget."""
    groups = {f"{topic_prefix}sendpromptly-sink-{name}": CAUGHT_UP_SECONDS for name in SINK_NAMES}
    groups[f"{topic_prefix}sendpromptly-agents"] = CAUGHT_UP_SECONDS + FAUST_COMMIT_SECONDS
    return groups


@dataclass
class LagMonitor:
    bootstrap: str
    topic_prefix: str
    partitions: int
    # (time, the groups not caught up then; all of them while the broker does not answer)
    samples: list[tuple[float, list[str]]] = field(default_factory=list)
    _ends: list[tuple[float, Offsets]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        # librdkafka's own complaints while the broker is down would drown the test's output.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while not stop.is_set():
            now = time.time()
            behind = await asyncio.to_thread(self._sample, admin, now)
            self.samples.append((now, behind))
            await asyncio.sleep(SAMPLE_SECONDS)

    def caught_up_since(self, at: float) -> float | None:
        """The first moment at or after ``at`` every consumer was caught up (None: not in this run)."""
        return next((t for t, behind in self.samples if t >= at and not behind), None)

    def behind_at(self, at: float) -> list[str]:
        """The groups behind in the last sample before ``at``."""
        return next((behind for t, behind in reversed(self.samples) if t <= at), [])

    def _sample(self, admin: AdminClient, now: float) -> list[str]:
        groups = consumer_groups(self.topic_prefix)
        try:
            self._ends.append((now, self._end_offsets(admin)))
            return [group for group, budget in groups.items()
                    if not self._group_caught_up(admin, group, now - budget)]
        except KafkaException:
            return list(groups)  # the broker is down or just back: nobody is caught up with it

    def _end_offsets(self, admin: AdminClient) -> Offsets:
        partitions = [TopicPartition(spec.name(self.topic_prefix), p)
                      for spec in ALL_TOPICS for p in range(spec.partitions(self.partitions))]
        futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions},
                                     request_timeout=_ADMIN_TIMEOUT)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}

    def _group_caught_up(self, admin: AdminClient, group: str, as_of: float) -> bool:
        request = [ConsumerGroupTopicPartitions(group)]
        answer = admin.list_consumer_group_offsets(request, request_timeout=_ADMIN_TIMEOUT)[group].result()
        committed = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions or []}
        ends = self._ends_as_of(as_of)
        # A partition the group never committed on (offset < 0) has had nothing for it yet.
        return all(offset >= ends.get(key, 0) for key, offset in committed.items() if offset >= 0)

    def _ends_as_of(self, as_of: float) -> Offsets:
        times = [t for t, _ in self._ends]
        index = max(0, bisect.bisect_right(times, as_of) - 1)
        return self._ends[index][1]
