"""The agents' consumer commits only past records they acknowledged, and reports records skipped.

Stock faust commits over a one-record hole at a partition's head and over any jump in offsets; the
agents' inputs have neither compaction nor transactions, so either means a signal nobody applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import faust
import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from agents.kafka_consumer import AtLeastOnceConsumer, AtLeastOnceTransport
from agents.metrics import SKIPPED_RECORDS

RECEIPTS = TP("sendpromptly.receipts.v1", 0)


async def _ignore(*_: object) -> None:
    return None


def _consumer(transport: type[aiokafka_driver.Transport]) -> aiokafka_driver.Consumer:
    # Never started: nothing here talks to a broker.
    app = faust.App("at-least-once-test", broker="kafka://127.0.0.1:1")
    consumer = transport(app.conf.broker_consumer, app).create_consumer(
        callback=_ignore, on_partitions_revoked=_ignore, on_partitions_assigned=_ignore)
    assert isinstance(consumer, aiokafka_driver.Consumer)
    return consumer


@pytest.fixture
async def consumer() -> AsyncIterator[aiokafka_driver.Consumer]:
    # faust's services want a running event loop even when never started.
    yield _consumer(AtLeastOnceTransport)


def _skipped(topic: str) -> float:
    value: float = SKIPPED_RECORDS.labels(topic)._value.get()
    return value


async def test_a_record_not_acknowledged_at_the_committed_offset_holds_the_commit(
        consumer: aiokafka_driver.Consumer) -> None:
    assert isinstance(consumer, AtLeastOnceConsumer)
    consumer._committed_offset[RECEIPTS] = 10
    consumer._acked[RECEIPTS] = [11, 12, 13]
    assert consumer._new_offset(RECEIPTS) is None

    # Once it is acknowledged, the commit moves past the whole run.
    consumer._acked[RECEIPTS] = [10, 11, 12, 13]
    assert consumer._new_offset(RECEIPTS) == 14


async def test_stock_faust_would_commit_over_that_record() -> None:
    # Why AtLeastOnceConsumer exists; if an upgrade makes this fail, its _new_offset may go.
    stock = _consumer(aiokafka_driver.Transport)
    stock._committed_offset[RECEIPTS] = 10
    stock._acked[RECEIPTS] = [11, 12, 13]
    assert stock._new_offset(RECEIPTS) == 14


async def test_a_jump_in_offsets_is_counted_and_never_committed_over(
        consumer: aiokafka_driver.Consumer) -> None:
    before = _skipped(RECEIPTS.topic)
    consumer._committed_offset[RECEIPTS] = 20
    consumer._acked[RECEIPTS] = [20]
    # The fetcher handed over offset 25 right after 20: faust reports the jump as 21..25.
    await consumer._add_gap(RECEIPTS, 21, 25)
    consumer._acked[RECEIPTS].append(25)

    assert _skipped(RECEIPTS.topic) - before == 4
    assert consumer._new_offset(RECEIPTS) == 21, "commits up to the hole, not over it"
    assert consumer._new_offset(RECEIPTS) is None


async def test_contiguous_acknowledgements_commit_as_stock_faust_does(
        consumer: aiokafka_driver.Consumer) -> None:
    consumer._committed_offset[RECEIPTS] = 5
    consumer._acked[RECEIPTS] = [5, 6, 7, 9]
    assert consumer._new_offset(RECEIPTS) == 8
    # A partition the group never committed on commits from its first acknowledged record.
    fresh = TP("sendpromptly.results.v1", 3)
    consumer._acked[fresh] = [0, 1, 2]
    assert consumer._new_offset(fresh) == 3
