"""The agents' work off the stream, on the flow table and the deadline index: the deadline timer
that sends due flows back to their partition, the sweep that names flows closed longer than the
retention, and the index rebuild after every rebalance. Tables may only change inside stream
processing, so both send batches (``DeadlineBatch``) that the agent applies on the flows' own
partition."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.types import TableT

from agents import metrics, stored
from agents.deadlines import DeadlineIndex, by_partition
from agents.results_ends import ResultsEnds
from agents.tracker import partition_of
from agents.watermark import ResultsWatermark
from topics import DeadlineBatch, encode
from topics.messages import DeadlineAction

log = logging.getLogger(__name__)

TIMER_SECONDS = 0.25  # an incident opens no later than 2 s after its deadline
REBUILD_YIELD_EVERY = 5000
# How often the stored flows are read for those closed longer than the retention: a twenty-fourth
# of it (a flow is forgotten at most ~4 % late), within these bounds. Each read of every stored flow
# costs ~7 µs a flow (bench/RESULTS.md), so each flow is read ~24 times, not retention/1 h times.
# The index rebuild after every rebalance (so after every restart) looks for them too.
SWEEP_SECONDS_BOUNDS = (1.0, 24 * 3600.0)


def sweep_seconds(retention: timedelta) -> float:
    """How often ``forget_closed_flows`` runs for ``retention``."""
    low, high = SWEEP_SECONDS_BOUNDS
    return min(max(retention.total_seconds() / 24, low), high)


class DeadlineTimer:
    def __init__(self, *, flows: TableT[bytes, stored.Document], index: DeadlineIndex,
                 watermark: ResultsWatermark, results_ends: ResultsEnds, deadlines: faust.TopicT,
                 partitions: int, retention: timedelta):
        self._flows = flows
        self._index = index
        self._watermark = watermark
        self._results_ends = results_ends
        self._deadlines = deadlines
        self._partitions = partitions
        self._retention = retention

    async def fire_deadlines(self) -> None:
        """Send the flows now due (up to their partition's cutoff) to their partition (every
        ``TIMER_SECONDS``). A round that fails loses nothing: every flow it took from the index
        comes due again after ``REFIRE_AFTER``."""
        due = self._index.due(self._watermark.cutoffs(self._results_ends.known()), now=datetime.now(UTC))
        for partition, keys in by_partition(due, DeadlineBatch.MAX_KEYS):
            await self._deadlines.send(value=encode(DeadlineBatch.of(keys)), partition=partition)
        self._index.compact()
        # Here rather than per message: a gauge set takes a lock, and a scrape needs no fresher value.
        metrics.PENDING_FLOWS.set(len(self._index))

    async def forget_closed_flows(self) -> None:
        """Name the stored flows closed longer than the retention, in batches sent to their own
        partition, where the agent forgets them (every ``sweep_seconds``; it checks each again
        there)."""
        forget = ForgetBatches(self._send_forget)
        now = datetime.now(UTC)
        for n, (key, doc) in enumerate(self._flows.items(), 1):
            if stored.forgettable(doc, retention=self._retention, now=now):
                await forget.add(key, partition_in(key, doc, self._partitions))
            if n % REBUILD_YIELD_EVERY == 0:
                await asyncio.sleep(0)
        await forget.flush()

    async def rebuild_index(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        """The partitions this worker owns changed: index their pending flows afresh (connected to
        ``app.on_rebalance_complete``).

        A million stored flows take tens of seconds to read, so the loop yields now and then:
        /healthz keeps answering (the liveness probe), and a newer rebalance's rebuild takes over
        from this one instead of both filling the index."""
        generation = self._index.clear()
        forget = ForgetBatches(self._send_forget)
        now = datetime.now(UTC)
        for n, (key, doc) in enumerate(self._flows.items(), 1):
            deadline = stored.pending_deadline(doc)
            if deadline is not None:
                self._index.track(key, deadline, partition_in(key, doc, self._partitions))
            elif stored.forgettable(doc, retention=self._retention, now=now):
                await forget.add(key, partition_in(key, doc, self._partitions))
            if n % REBUILD_YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if self._index.generation != generation:
                    return
        await forget.flush()
        metrics.PENDING_FLOWS.set(len(self._index))
        log.info("deadline index rebuilt: %d pending flows, %d flows to forget", len(self._index),
                 forget.sent)

    async def _send_forget(self, batch: DeadlineBatch, partition: int) -> None:
        await self._deadlines.send(value=encode(batch), partition=partition)


def partition_in(key: bytes, doc: stored.Document, partitions: int) -> int:
    """The partition a stored flow belongs to, of ``partitions``."""
    partition = stored.partition_in(doc)
    # Written before the partition was stored beside the state: where its key goes.
    return partition_of(key, partitions) if partition is None else partition


class ForgetBatches:
    """Flow keys found forgettable, sent as ``forget`` batches of at most ``MAX_KEYS`` to the
    partition that owns them as they fill up, the rest on ``flush``."""

    def __init__(self, send: Callable[[DeadlineBatch, int], Awaitable[None]]):
        self._send = send
        self._keys: dict[int, list[bytes]] = {}
        self.sent = 0

    async def add(self, key: bytes, partition: int) -> None:
        keys = self._keys.setdefault(partition, [])
        keys.append(key)
        if len(keys) == DeadlineBatch.MAX_KEYS:
            await self._send_keys(partition)

    async def flush(self) -> None:
        for partition in list(self._keys):
            await self._send_keys(partition)

    async def _send_keys(self, partition: int) -> None:
        keys = self._keys.pop(partition, [])
        if keys:
            await self._send(DeadlineBatch.of(keys, action=DeadlineAction.FORGET), partition)
            self.sent += len(keys)
