"""When a partition's deadlines may be judged: the cutoff follows the results the agents applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agents.watermark import GRACE, PartitionEnd, ResultsWatermark

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_caught_up_partition_is_judged_up_to_the_brokers_last_answer_even_with_no_traffic() -> None:
    watermark = ResultsWatermark()
    # Partition 0 never had a result; partition 1's committed offset is its end.
    ends = {0: PartitionEnd(end=0, answered_at=NOW, start=0),
            1: PartitionEnd(end=40, answered_at=NOW - timedelta(seconds=1), start=40)}
    assert watermark.cutoffs(ends) == {0: NOW - GRACE, 1: NOW - timedelta(seconds=1) - GRACE}


def test_a_partition_behind_is_judged_only_up_to_the_last_result_applied_there() -> None:
    watermark = ResultsWatermark()
    watermark.applied(0, offset=9, timestamp=NOW - timedelta(seconds=8))
    watermark.applied(1, offset=19, timestamp=NOW - timedelta(seconds=1))
    # Partition 0 ends at 30 (twenty results still to apply); partition 1 is caught up at 20.
    cutoffs = watermark.cutoffs({0: PartitionEnd(30, NOW, 0), 1: PartitionEnd(20, NOW, 0)})
    assert cutoffs == {0: NOW - timedelta(seconds=8) - GRACE, 1: NOW - GRACE}


def test_a_partition_behind_with_nothing_applied_yet_is_not_judged() -> None:
    # Just after a restart: results wait from the committed offset 5 up to 12.
    assert ResultsWatermark().cutoffs({3: PartitionEnd(end=12, answered_at=NOW, start=5)}) == {}


def test_a_partition_whose_end_is_unknown_is_not_judged() -> None:
    watermark = ResultsWatermark()
    watermark.applied(0, offset=9, timestamp=NOW)
    assert watermark.cutoffs({}) == {}


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 600)), max_size=30), st.integers(0, 1100),
       st.integers(0, 1100), st.integers(0, 60))
def test_the_cutoff_never_passes_the_brokers_answer_nor_a_result_not_yet_applied(
        applied: list[tuple[int, int]], end: int, start: int, answered_ago: int) -> None:
    watermark = ResultsWatermark()
    last = None
    for offset, seconds_ago in sorted(applied):
        at = NOW - timedelta(seconds=seconds_ago)
        watermark.applied(0, offset, at)
        last = (offset, at)
    answered_at = NOW - timedelta(seconds=answered_ago)
    cutoffs = watermark.cutoffs({0: PartitionEnd(end, answered_at, start)})
    position = max(last[0] + 1 if last else 0, start)
    if position >= end:
        assert cutoffs == {0: answered_at - GRACE}
    elif last is not None:  # behind: never past the last result applied
        assert cutoffs == {0: last[1] - GRACE}
    else:
        assert cutoffs == {}
