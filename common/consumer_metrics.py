"""What every consuming process (the agents, each sink) tells Prometheus about its consumer group;
imported by those processes only, so the gateway serves none of it.

Lag says how far behind a partition is in messages; the newest applied message's timestamp says
how old what it applied is (freshness: ``time() - sendpromptly_consumer_last_applied_timestamp_seconds``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DEAD_LETTERS = Counter("sendpromptly_dead_letters_total", "Messages sent to the dead-letter topic",
                       ["consumer", "reason"])
CONSUMER_LAG = Gauge("sendpromptly_consumer_lag", "Messages behind the end of each partition",
                     ["group", "topic", "partition"])
LAST_APPLIED = Gauge(
    "sendpromptly_consumer_last_applied_timestamp_seconds",
    "Kafka timestamp (Unix seconds) of the newest message the group has applied, per partition",
    ["group", "topic", "partition"],
)


class GroupMetrics:
    """Lag and freshness of one consumer group in this process, for the partitions it holds now: a
    partition that moved to another member stops being reported here, so that a stale value of
    a process that no longer holds it never stands beside the new holder's."""

    def __init__(self, group: str):
        self.group = group
        self._held: set[tuple[str, int]] = set()

    def report(self, lags: dict[tuple[str, int], int], applied: dict[tuple[str, int], float]) -> None:
        """``lags``: messages behind, for every (topic, partition) held; ``applied``: the Kafka
        timestamp (Unix seconds) of the newest message applied, where one was."""
        for topic, partition in self._held - lags.keys():
            for gauge in (CONSUMER_LAG, LAST_APPLIED):
                try:
                    gauge.remove(self.group, topic, str(partition))
                except KeyError:  # never reported for this partition
                    pass
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(self.group, topic, str(partition)).set(lag)
            if (topic, partition) in applied:
                LAST_APPLIED.labels(self.group, topic, str(partition)).set(applied[topic, partition])
        self._held = set(lags)
