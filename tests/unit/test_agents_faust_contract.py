"""What the agents read of faust and aiokafka that they do not promise: if an upgrade moves it,
fail here rather than in a deadline judged against the wrong figures."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import cast

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from agents.kafka_consumer import committed_offset, last_fetch


def test_committed_offsets_are_where_faust_keeps_them() -> None:
    # faust's Consumer.__init__ creates _committed_offset (a defaultdict of None) and its commit
    # path updates it; the deadline cutoffs and the lag gauge read it through committed_offset.
    assert "self._committed_offset = defaultdict(lambda: None)" in inspect.getsource(Consumer.__init__)
    assert "self._committed_offset.update(committable_offsets)" in inspect.getsource(
        Consumer._commit_offsets)
    tp = TP("sendpromptly.results.v1", 0)
    consumer = cast(Consumer, SimpleNamespace(_committed_offset={tp: 41}))
    assert committed_offset(consumer, tp) == 41
    assert committed_offset(consumer, TP("sendpromptly.results.v1", 1)) is None


def test_the_last_fetch_figures_are_where_faust_and_aiokafka_keep_them() -> None:
    # faust's aiokafka driver runs the aiokafka consumer in its consumer thread as ``_consumer``;
    # aiokafka reports the end offset and time of its last fetch response per partition.
    assert "self._consumer = self._create_consumer(" in inspect.getsource(AIOKafkaConsumerThread.on_start)
    assert callable(AIOKafkaConsumer.highwater) and callable(AIOKafkaConsumer.last_poll_timestamp)
    tp = TP("sendpromptly.results.v1", 0)
    kafka = SimpleNamespace(highwater=lambda _: 12, last_poll_timestamp=lambda _: 1_767_268_800_000)
    known = last_fetch(cast(Consumer, SimpleNamespace(_thread=SimpleNamespace(_consumer=kafka))), tp)
    assert known is not None and known[0] == 12 and known[1].isoformat() == "2026-01-01T12:00:00+00:00"
    unstarted = SimpleNamespace(_thread=SimpleNamespace(_consumer=None))
    assert last_fetch(cast(Consumer, unstarted), tp) is None


def test_the_commit_path_the_at_least_once_consumer_mends_is_where_it_was() -> None:
    # agents.kafka_consumer.AtLeastOnceConsumer overrides these by name: each must still be the
    # step faust takes, with the arguments it reads.
    assert "await self._add_gap(tp, r_offset + 1, offset)" in inspect.getsource(Consumer._drain_messages)
    assert "offset = self._new_offset(tp)" in inspect.getsource(Consumer._filter_committable_offsets)
    assert "await self.seek_to_committed()" in inspect.getsource(Consumer.perform_seek)
    # A seek to 0 forgets the read offset, so the rewound records are not dropped as already read.
    assert "self._read_offset[ensure_TP(partition)] = offset if offset else None" in inspect.getsource(
        Consumer.seek)
    # aiokafka's seek to the committed offsets leaves a partition without one where it is: the
    # reason the agents' consumer rewinds those itself.
    assert "if offset and offset > 0:" in inspect.getsource(AIOKafkaConsumer.seek_to_committed)
