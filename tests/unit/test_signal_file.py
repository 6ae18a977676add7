"""``sendpromptly send``'s file, pure: every bad line named before anything is sent, and batches cut
in file order within the gateway's limits."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from api_gateway.http_input import MAX_BATCH_BYTES
from api_gateway.ingest_batch import MAX_ITEMS
from sendpromptly.client import BATCH_MAX_BYTES, BATCH_MAX_ITEMS, KINDS, encode_json
from sendpromptly.signal_file import FileRefused, Signal, plan_batches, read_signals


def lines(*docs: object) -> list[bytes]:
    return [(doc if isinstance(doc, str) else json.dumps(doc)).encode() + b"\n" for doc in docs]


def test_the_clients_limits_are_the_gateways() -> None:
    assert (BATCH_MAX_ITEMS, BATCH_MAX_BYTES) == (MAX_ITEMS, MAX_BATCH_BYTES)


def test_a_line_kind_wins_over_the_default_and_is_not_sent() -> None:
    signals = read_signals(lines({"idempotency_key": "a", "reference": "r"},
                                 "  ",
                                 {"idempotency_key": "b", "reference": "r", "kind": "result"}), "receipt")
    assert [(s.line, s.kind, s.item) for s in signals] == [
        (1, "receipt", {"idempotency_key": "a", "reference": "r"}),
        (3, "result", {"idempotency_key": "b", "reference": "r"})]
    assert signals[1].encoded == encode_json(signals[1].item)


def test_every_bad_line_is_named_and_the_file_refused() -> None:
    with pytest.raises(FileRefused) as refused:
        read_signals(lines({"idempotency_key": "a", "reference": "r"},
                           "{not json",
                           {"reference": "r"},
                           {"idempotency_key": "", "reference": "r"},
                           {"idempotency_key": 7, "reference": "r"},
                           '{"idempotency_key": "n", "amount": NaN}',
                           {"idempotency_key": "k", "kind": "refund"},
                           ["a list"],
                           {"idempotency_key": "c", "reference": "r", "kind": "result"}), None)
    problems = refused.value.problems
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in range(1, 9)]
    assert 'has no "kind"' in problems[0] and "not valid JSON" in problems[1]
    assert all("has no idempotency_key" in p for p in problems[2:5])
    assert "NaN is not a JSON value" in problems[5] and '"refund"' in problems[6]
    assert "must be a JSON object" in problems[7]


def test_a_signal_that_fits_no_batch_is_refused() -> None:
    with pytest.raises(FileRefused, match="line 1: is 68 bytes as JSON; a batch request holds at most 60"):
        read_signals(lines({"idempotency_key": "a", "reference": "r" * 30}), "receipt", max_bytes=60)


@st.composite
def signals(draw: st.DrawFn) -> list[Signal]:
    drawn = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.text(max_size=40)), max_size=40))
    made = []
    for line, (kind, padding) in enumerate(drawn, start=1):
        item = {"idempotency_key": f"k{line}", "pad": padding}
        made.append(Signal(line, kind, item, encode_json(item)))
    return made


@given(signals(), st.integers(min_value=1, max_value=6), st.integers(min_value=300, max_value=900))
def test_batches_keep_file_order_one_kind_each_within_both_limits(
        given_signals: list[Signal], max_items: int, max_bytes: int) -> None:
    # read_signals refuses a signal too big to go alone (tested above): plan_batches never sees one.
    assume(all(len(encode_json({"items": [s.item]})) <= max_bytes for s in given_signals))
    batches = plan_batches(given_signals, max_items=max_items, max_bytes=max_bytes)

    assert [s for batch in batches for s in batch.signals] == given_signals
    for batch in batches:
        assert batch.signals and {s.kind for s in batch.signals} == {batch.kind}
        assert len(batch.signals) <= max_items
        # The size counted is the size sent.
        assert batch.size == len(encode_json({"items": batch.items})) <= max_bytes
    # As few as order allows: a batch ends only where the next signal could not join it.
    for batch, after in itertools.pairwise(batches):
        following = after.signals[0]
        joined = len(encode_json({"items": [*batch.items, following.item]}))
        assert (following.kind != batch.kind or len(batch.signals) == max_items or joined > max_bytes)


def test_a_long_file_is_cut_at_a_thousand_and_at_a_kind_change() -> None:
    made = [Signal(n, "receipt" if n <= 2500 else "result", {"idempotency_key": f"k{n}"},
                   encode_json({"idempotency_key": f"k{n}"})) for n in range(1, 2601)]
    assert [(b.kind, len(b.signals)) for b in plan_batches(made)] == [
        ("receipt", 1000), ("receipt", 1000), ("receipt", 500), ("result", 100)]
