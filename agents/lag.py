"""How far behind the agents are, for Prometheus: each input partition's lag (messages behind its
end) and freshness (the Kafka timestamp of the newest message applied there)."""

from __future__ import annotations

from typing import cast

import faust
from faust.transport.consumer import Consumer

from agents.kafka_consumer import committed_offset
from agents.tracker import TrackerTopics
from common.consumer_metrics import GroupMetrics

LAG_SECONDS = 5.0


class LagMeter:
    def __init__(self, app: faust.App, inputs: TrackerTopics):
        self._app = app
        self._inputs = {inputs.receipts, inputs.results, inputs.incidents, inputs.deadlines}
        self._group = GroupMetrics(app.conf.id)
        # (topic, partition) -> Kafka timestamp (s) of the newest message applied there.
        self._applied: dict[tuple[str, int], float] = {}

    def applied(self, topic: str, partition: int, timestamp: float) -> None:
        self._applied[topic, partition] = timestamp

    async def measure_lag(self) -> None:
        """Report lag and freshness; no broker call, the consumer's own figures."""
        consumer = cast(Consumer, self._app.consumer)
        lags: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            if tp.topic in self._inputs:
                highwater = consumer.highwater(tp)
                if highwater is None:  # not fetched yet, just after an assignment
                    continue
                # lag = end of partition - committed offset
                lags[tp.topic, tp.partition] = max(0, highwater - (committed_offset(consumer, tp) or 0))
        self._group.report(lags, self._applied)
