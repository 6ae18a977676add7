"""The deadline index, on an injected clock: due exactly once per deadline, again if still pending,
each partition judged only up to its own cutoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agents.deadlines import REFIRE_AFTER, DeadlineIndex, Due, by_partition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def due_at(index: DeadlineIndex, at: datetime) -> list[Due]:
    """What comes due when every partition is judged at ``at`` (all caught up)."""
    return index.due(dict.fromkeys(range(4), at), now=at)


def test_nothing_is_due_before_its_deadline() -> None:
    index = DeadlineIndex()
    index.track(b"a", T0 + timedelta(seconds=5), 0)
    assert due_at(index, T0 + timedelta(seconds=4)) == []
    assert [d.key for d in due_at(index, T0 + timedelta(seconds=5))] == [b"a"]


def test_a_due_flow_comes_due_again_only_if_still_pending_after_the_refire_delay() -> None:
    index = DeadlineIndex()
    index.track(b"a", T0, 3)
    [first] = due_at(index, T0)
    assert (first.key, first.deadline, first.partition) == (b"a", T0, 3)
    assert due_at(index, T0 + REFIRE_AFTER - timedelta(seconds=1)) == []
    assert [d.key for d in due_at(index, T0 + REFIRE_AFTER)] == [b"a"]  # the batch was lost: again
    index.forget(b"a")
    assert due_at(index, T0 + 10 * REFIRE_AFTER) == []
    assert len(index) == 0


def test_forgotten_and_retracked_flows_leave_no_stale_expiry() -> None:
    index = DeadlineIndex()
    index.track(b"a", T0, 0)
    index.forget(b"a")
    index.track(b"b", T0, 0)
    index.track(b"b", T0 + timedelta(seconds=30), 1)
    assert due_at(index, T0 + timedelta(seconds=1)) == []
    assert [(d.key, d.partition) for d in due_at(index, T0 + timedelta(seconds=30))] == [(b"b", 1)]


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 100)), max_size=60))
def test_every_tracked_deadline_comes_due_once_in_order(entries: list[tuple[int, int]]) -> None:
    index = DeadlineIndex()
    expected = {}
    for key, second in entries:
        index.track(str(key).encode(), T0 + timedelta(seconds=second), 0)
        expected[str(key).encode()] = T0 + timedelta(seconds=second)
    seen: list[tuple[datetime, bytes]] = []
    for second in range(0, 101):
        for due in due_at(index, T0 + timedelta(seconds=second)):
            seen.append((due.deadline, due.key))
            index.forget(due.key)  # the agent opened the incident
            assert due.deadline <= T0 + timedelta(seconds=second)
    assert sorted(seen) == sorted((d, k) for k, d in expected.items())
    assert len(seen) == len(expected)
    index.compact()


def test_each_clear_starts_a_new_generation_and_empties_the_index() -> None:
    index = DeadlineIndex()
    index.track(b"a", T0, 0)
    first = index.clear()
    assert len(index) == 0 and due_at(index, T0 + 10 * REFIRE_AFTER) == []
    assert index.clear() == first + 1 == index.generation


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 3)), unique_by=lambda e: e[0], max_size=300),
       st.integers(1, 50))
def test_due_flows_go_out_grouped_by_their_partition_in_bounded_batches(
        entries: list[tuple[int, int]], max_keys: int) -> None:
    due = [Due(str(n).encode(), T0, partition) for n, partition in entries]
    batches = list(by_partition(due, max_keys))
    assert all(1 <= len(keys) <= max_keys for _, keys in batches)
    for partition in range(4):
        # Every due flow in exactly one batch, on its own partition, in the order it came due.
        sent = [key for p, keys in batches if p == partition for key in keys]
        assert sent == [d.key for d in due if d.partition == partition]


def test_each_partition_is_judged_only_up_to_its_own_cutoff() -> None:
    # Partition 0's results are applied up to T0 + 5 s only (the agents are behind there); partition
    # 1 is caught up; partition 2 has no cutoff at all (its position is not known yet).
    index = DeadlineIndex()
    for partition in range(3):
        index.track(f"k{partition}".encode(), T0 + timedelta(seconds=10), partition)
    now = T0 + timedelta(seconds=20)
    cutoffs = {0: T0 + timedelta(seconds=5), 1: now}
    assert [d.key for d in index.due(cutoffs, now=now)] == [b"k1"]
    assert [d.key for d in index.due({0: T0 + timedelta(seconds=10)}, now=now)] == [b"k0"]
    assert [d.key for d in index.due({2: now}, now=now)] == [b"k2"]
