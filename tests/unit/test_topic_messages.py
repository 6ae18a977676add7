"""Topic values: what direct producers may send, and what the agents refuse (with a reason)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from topics import (
    ALL_TOPICS,
    RECEIPTS,
    RESULTS,
    Receipt,
    Result,
    SchemaError,
    decode,
    encode,
    flow_key,
    split_flow_key,
)
from topics.catalog import SNAPSHOT_RETENTION_MS
from topics.messages import DeadLetter, DeadlineBatch, Snapshot

NOW = datetime(2026, 3, 1, 8, 30, 15, 123000, tzinfo=UTC)


def good_receipt(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "schema": "receipt.v1", "project_id": "prj_abc", "idempotency_key": "k1", "reference": "inv_1",
        "event_type": "invoice.paid", "effect_type": "grant_access",
        "received_at": "2026-03-01T08:30:15.123Z",
    }
    doc.update(changes)
    return doc


def test_a_receipt_round_trips_through_bytes() -> None:
    receipt = Receipt(project_id="prj_abc", idempotency_key="k1", reference="inv 1/ü",
                      event_type="invoice.paid", effect_type="grant_access", received_at=NOW,
                      timeout_seconds=300,
                      snapshot=Snapshot(key_id="k1", nonce="bm9uY2U=", ciphertext="Y3Q="))
    assert decode(Receipt, encode(receipt)) == receipt


def test_a_direct_producers_receipt_decodes() -> None:
    receipt = decode(Receipt, orjson.dumps(good_receipt(received_at="2026-03-01T09:30:15.123+01:00")))
    assert receipt.received_at == NOW and receipt.mode is None


@pytest.mark.parametrize(("raw", "reason"), [
    (b"not json", "not_json"),
    (b"[1, 2]", "not_object"),
    (orjson.dumps(good_receipt(schema="receipt.v2")), "wrong_schema"),
    (orjson.dumps(good_receipt(event_type="has space")), "invalid_fields"),
    (orjson.dumps(good_receipt(timeout_seconds=0)), "invalid_fields"),
    (orjson.dumps(good_receipt(received_at="yesterday")), "invalid_fields"),
    (orjson.dumps(good_receipt(received_at="2026-03-01T08:30:15")), "invalid_fields"),
    (orjson.dumps(good_receipt(surprise=1)), "invalid_fields"),
    (orjson.dumps({k: v for k, v in good_receipt().items() if k != "reference"}), "invalid_fields"),
    (None, "empty_value"),
])
def test_bad_receipts_are_refused_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(SchemaError) as refused:
        decode(Receipt, raw)
    assert refused.value.reason == reason


def test_a_refusal_names_every_bad_field() -> None:
    with pytest.raises(SchemaError) as refused:
        decode(Result, orjson.dumps({"schema": "result.v1", "project_id": "nope", "status": "maybe"}))
    for name in ("project_id", "status", "reference", "idempotency_key", "received_at"):
        assert name in refused.value.detail


@given(st.binary(max_size=300))
def test_no_bytes_crash_the_decoder(raw: bytes) -> None:
    for cls in (Receipt, Result):
        try:
            decode(cls, raw)
        except SchemaError:
            pass


@given(st.text(min_size=1, max_size=200).filter(str.isprintable))
def test_flow_keys_split_back_even_when_references_contain_colons(reference: str) -> None:
    assert split_flow_key(flow_key("prj_abc", reference)) == ("prj_abc", reference)


def test_flow_topics_are_co_partitioned_and_keep_nothing_past_the_purge_period() -> None:
    assert RECEIPTS.partitions(6) == RESULTS.partitions(6) == 6
    assert all(int(spec.config()["retention.ms"]) <= SNAPSHOT_RETENTION_MS for spec in ALL_TOPICS)
    assert len({spec.base_name for spec in ALL_TOPICS}) == len(ALL_TOPICS) == 7


def test_a_dead_letter_keeps_the_exact_bytes() -> None:
    letter = DeadLetter.of(topic="t", partition=1, offset=7, key=b"k", value=b"\xff\x00", reason="not_json",
                           consumer="agents", failed_at=NOW)
    assert decode(DeadLetter, encode(letter)) == letter


def test_a_deadline_batch_round_trips_and_refuses_what_is_not_a_list_of_flow_keys() -> None:
    batch = DeadlineBatch.of((flow_key("prj_a", "inv 1/ü"), flow_key("prj_a", "x:y")))
    assert decode(DeadlineBatch, encode(batch)) == batch
    for keys in ([], ["no-colon"], [7], "prj_a:inv_1", ["prj_a:x"] * (DeadlineBatch.MAX_KEYS + 1)):
        with pytest.raises(SchemaError) as refused:
            decode(DeadlineBatch, orjson.dumps({"schema": "deadline_batch.v1", "keys": keys}))
        assert refused.value.reason == "invalid_fields" and "keys" in refused.value.detail
