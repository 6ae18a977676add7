"""Request bodies of the ingest endpoints: each broken rule named, nothing else let through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_gateway.ingest_bodies import MAX_PAYLOAD_BYTES, parse_receipt, parse_result
from topics.fields import FieldErrors


def fields_of(error: FieldErrors) -> set[str]:
    return {field for field, _ in error.errors}


def test_timeout_minutes_become_seconds() -> None:
    body = parse_receipt({"reference": "r", "event_type": "a", "effect_type": "b", "timeout_minutes": 5})
    assert body.timeout_seconds == 300


def test_both_timeouts_at_once_are_refused() -> None:
    with pytest.raises(FieldErrors) as refused:
        parse_receipt({"reference": "r", "event_type": "a", "effect_type": "b", "timeout_minutes": 5,
                       "timeout_seconds": 5})
    assert fields_of(refused.value) == {"timeout_seconds"}


@pytest.mark.parametrize(("body", "bad"), [
    ({"reference": "", "event_type": "a", "effect_type": "b"}, {"reference"}),
    ({"reference": "x" * 201, "event_type": "a", "effect_type": "b"}, {"reference"}),
    ({"reference": "r\n", "event_type": "a", "effect_type": "b"}, {"reference"}),
    ({"reference": "r", "event_type": "a b", "effect_type": "b" * 101}, {"event_type", "effect_type"}),
    ({"reference": "r", "event_type": "a", "effect_type": "b", "timeout_seconds": 604801},
     {"timeout_seconds"}),
    ({"reference": "r", "event_type": "a", "effect_type": "b", "timeout_minutes": True}, {"timeout_minutes"}),
    ({"reference": "r", "event_type": "a", "effect_type": "b", "payload": [1]}, {"payload"}),
    ({"reference": "r", "event_type": "a", "effect_type": "b", "payload": {"x": "y" * MAX_PAYLOAD_BYTES}},
     {"payload"}),
    ({"reference": "r", "event_type": "a", "effect_type": "b", "refrence": "typo"}, {"refrence"}),
    ({}, {"reference", "event_type", "effect_type"}),
])
def test_bad_receipts_name_each_field(body: dict[str, object], bad: set[str]) -> None:
    with pytest.raises(FieldErrors) as refused:
        parse_receipt(body)
    assert fields_of(refused.value) == bad


def test_results_check_status_replay_id_and_detail_size() -> None:
    with pytest.raises(FieldErrors) as refused:
        parse_result({"reference": "r", "status": "done", "replay_id": "nope", "detail": "x" * 2049})
    assert fields_of(refused.value) == {"status", "replay_id", "detail"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@given(_json)
def test_any_json_is_either_a_body_or_a_list_of_field_errors(doc: object) -> None:
    for parse in (parse_receipt, parse_result):
        try:
            parse(doc)
        except FieldErrors as refused:
            assert refused.errors and all(isinstance(m, str) and m for _, m in refused.errors)
