"""What the consumer knows of the results partitions this worker owns, for the results watermark
(``agents.watermark``): where each one's log ends and where this worker's consumption began."""

from __future__ import annotations

import asyncio
from typing import cast

import faust
from faust.transport.consumer import Consumer
from faust.types import TP

from agents.kafka_consumer import committed_offset, last_fetch
from agents.watermark import PartitionEnd

# How often the log starts are asked of the broker, and how long an answer may take.
LOG_STARTS_SECONDS = 5.0


class ResultsEnds:
    def __init__(self, app: faust.App, results: str):
        self._app = app
        self._results = results
        # Where a results partition's log begins, for partitions the group has never committed on:
        # consumption starts there (auto_offset_reset=earliest). Asked of the broker by a slow
        # timer (``learn_log_starts``, every ``LOG_STARTS_SECONDS``), so the deadline timer never waits on it.
        self._log_starts: dict[TP, int] = {}

    def known(self) -> dict[int, PartitionEnd]:
        """Each owned results partition whose end the consumer knows: no broker call, the figures
        of its last fetch responses."""
        consumer = self._consumer()
        ends: dict[int, PartitionEnd] = {}
        for tp in consumer.assignment():
            if tp.topic != self._results:
                continue
            known = last_fetch(consumer, tp)
            if known is not None:
                end, answered_at = known
                start = committed_offset(consumer, tp)
                ends[tp.partition] = PartitionEnd(end, answered_at,
                                                  self._log_starts.get(tp, 0) if start is None else start)
        return ends

    async def learn_log_starts(self) -> None:
        """Ask the broker where the logs begin of the owned results partitions the group has never
        committed on. Without it, one whose records all expired before this group ever committed
        there would look behind forever, and its deadlines would never be judged."""
        consumer = self._consumer()
        never = [tp for tp in consumer.assignment()
                 if tp.topic == self._results and committed_offset(consumer, tp) is None]
        if never:
            self._log_starts.update(await asyncio.wait_for(consumer.earliest_offsets(*never),
                                                           LOG_STARTS_SECONDS))

    def _consumer(self) -> Consumer:
        # The concrete consumer, not the ConsumerT interface: the committed offsets are its own.
        return cast(Consumer, self._app.consumer)
