"""The agents' RocksDB memory limits: a worker holding every partition stays within its budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents.app import store_options
from sendpromptly.config import Settings

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
