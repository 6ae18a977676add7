"""The agents app's own helpers: RocksDB memory limits within the budget, timers that outlive a
failed round, forgettable flows sent in bounded batches to their own partition."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.app import round_survives_errors, store_options
from agents.deadline_timer import ForgetBatches
from common.config import Settings
from topics import DeadlineBatch

MiB = 1024 * 1024


@given(st.integers(16, 64 * 1024), st.integers(1, 1024))
def test_all_partition_stores_together_stay_within_the_memory_budget(memory_mb: int, partitions: int) -> None:
    settings = Settings.from_env({"SENDPROMPTLY_AGENTS_ROCKSDB_MEMORY_MB": str(memory_mb),
                                  "SENDPROMPTLY_FLOW_PARTITIONS": str(partitions)})
    options = store_options(settings)
    assert options is not None
    write_buffers = options["write_buffer_size"] * options["max_write_buffer_number"]
    per_store = write_buffers + options["block_cache_size"]
    assert partitions * per_store <= memory_mb * MiB
    # ...and uses most of it: half a budget would just make RocksDB flush and read disk more often.
    assert partitions * per_store >= 0.99 * memory_mb * MiB - 4 * partitions


def test_a_store_other_than_rocksdb_gets_no_rocksdb_options() -> None:
    assert store_options(Settings.from_env({"SENDPROMPTLY_AGENTS_STORE": "memory://"})) is None


def test_a_failed_timer_round_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []

    async def fire() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise ConnectionError("broker gone")

    guarded = round_survives_errors(fire)

    async def two_rounds() -> None:
        await guarded()
        await guarded()

    asyncio.run(two_rounds())
    assert rounds == [0, 1]
    assert "timer round fire failed" in caplog.text and "broker gone" in caplog.text


def test_forgettable_flows_go_in_full_batches_to_their_partition_and_the_rest_on_flush() -> None:
    sent: list[tuple[int, DeadlineBatch]] = []

    async def send(batch: DeadlineBatch, partition: int) -> None:
        sent.append((partition, batch))

    async def sweep() -> ForgetBatches:
        batches = ForgetBatches(send)
        for n in range(DeadlineBatch.MAX_KEYS + 2):
            await batches.add(f"prj_a:inv_{n}".encode(), 0)
        await batches.add(b"prj_a:other", 5)
        await batches.flush()
        return batches

    batches = asyncio.run(sweep())
    assert [(partition, len(batch.keys)) for partition, batch in sent] == [
        (0, DeadlineBatch.MAX_KEYS), (0, 2), (5, 1)]
    assert {batch.action for _, batch in sent} == {"forget"}
    assert batches.sent == DeadlineBatch.MAX_KEYS + 3
