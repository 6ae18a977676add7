"""What the agents need of faust's Kafka consumer beyond its public API, in one place.

faust offers no public reader for the committed offset or the last fetch figures, and its commits
need three mends to stay at least once (``AtLeastOnceConsumer``), which override faust's private
methods. ``tests/unit/test_agents_faust_contract.py`` fails if an upgrade moves what this relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import faust
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ConsumerT

from agents.metrics import SKIPPED_RECORDS

log = logging.getLogger(__name__)


class AtLeastOnceConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, held to at-least-once on the agents' inputs.

    faust can commit past a record no agent processed, and then nothing reads it again:

    - After an assignment faust resumes fetching, then seeks each partition to its committed
      offset; aiokafka's seek skips a partition with none (or at 0) and leaves it where the fetcher
      already is. Records fetched in between and dropped (a rebalance clears the streams' queues)
      are not read again. Such a partition goes back to its beginning, as
      ``auto_offset_reset=earliest`` promises; the agents drop what they already applied.
    - faust takes a jump in a partition's offsets for the hole a compacted or transactional topic
      leaves and commits over it. The agents' inputs have no such holes, so a jump means records
      the fetcher skipped: it is counted and logged (SendPromptlyAgentsSkippedRecords), never
      committed over, and a restart reads them again.
    - faust commits over a single unacknowledged record at the head of a partition (it takes a
      one-record hole at the committed offset for a compaction gap): the committed offset moves
      only past records the agents acknowledged.
    """

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        for tp, offset in committed.items():
            if not offset and tp.topic not in changelogs:
                # faust's seek also forgets the read offset, so the rewound records are not dropped.
                await self.seek(tp, 0)
                log.info("%s[%d] has no committed offset: reading it from its beginning",
                         tp.topic, tp.partition)
        return committed

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # faust's arguments include ``offset_to``, the record it is about to process.
        skipped = offset_to - offset_from
        SKIPPED_RECORDS.labels(tp.topic).inc(skipped)
        log.error("%s[%d]: the fetcher skipped offsets %d-%d (%d records); the committed offset stays "
                  "before them, and restarting this worker reads them again (if they still exist: "
                  "see SendPromptlyAgentsSkippedRecords)", tp.topic, tp.partition, offset_from,
                  offset_to - 1, skipped)

    def _new_offset(self, tp: TP) -> int | None:
        acked, committed = self._acked[tp], self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            return None  # the record at the committed offset is not acknowledged yet
        offset: int | None = super()._new_offset(tp)
        return offset


class AtLeastOnceTransport(aiokafka_driver.Transport):
    Consumer: ClassVar[type[ConsumerT]] = AtLeastOnceConsumer


def use_at_least_once_consumer(app: faust.App) -> None:
    """Give ``app`` the at-least-once consumer; call before anything touches its transport."""
    app.transport = AtLeastOnceTransport(app.conf.broker_consumer, app)


def committed_offset(consumer: Consumer, tp: TP) -> int | None:
    """The offset faust last committed for ``tp`` (None before the group's first commit there)."""
    offset: int | None = consumer._committed_offset.get(tp)
    return offset


def last_fetch(consumer: Consumer, tp: TP) -> tuple[int, datetime] | None:
    """The end offset of ``tp`` in the broker's last fetch response and when that response came
    (aiokafka's ``highwater`` and ``last_poll_timestamp``, read from faust's consumer thread);
    None before the first."""
    kafka_consumer: Any = consumer._thread._consumer  # type: ignore[attr-defined]
    if kafka_consumer is None:
        return None
    end, polled_ms = kafka_consumer.highwater(tp), kafka_consumer.last_poll_timestamp(tp)
    if end is None or polled_ms is None:
        return None
    return end, datetime.fromtimestamp(polled_ms / 1000, UTC)
