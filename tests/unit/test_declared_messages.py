"""Every declared topic message: it round-trips, the recorded values of the format before msgspec
still decode to what they said, and a refusal names every broken field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import jsonschema
import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from topics import SchemaError, decode, encode
from topics.declared import Declared, Message
from topics.fields import (
    IDEMPOTENCY_KEY_PATTERN,
    PRINTABLE,
    PROJECT_ID_PATTERN,
    REPLAY_ID_PATTERN,
    TYPE_NAME_PATTERN,
    FieldErrors,
    IdempotencyKey,
    ProjectId,
    Reference,
    ReplayId,
    Rule,
    TypeName,
)
from topics.messages import (
    AuditEvent,
    DeadLetter,
    DeadlineBatch,
    FlowRecord,
    IncidentEvent,
    Receipt,
    RepairRequest,
    Result,
    Snapshot,
)

MESSAGES: tuple[type[Message], ...] = (Receipt, Result, IncidentEvent, RepairRequest, AuditEvent, DeadLetter,
                                       DeadlineBatch)
BY_SCHEMA = {cls.schema(): cls for cls in MESSAGES}
RECORDED = Path(__file__).parent.parent / "support" / "recorded"

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
# What we write keeps milliseconds, so a value round-trips when it has no finer part.
_timestamps = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31),
                           timezones=st.just(UTC)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))


def _parts(field_type: Any) -> tuple[Any, list[Any]]:
    if get_origin(field_type) is Annotated:
        return get_args(field_type)[0], list(field_type.__metadata__)
    return field_type, []


def _strategy(field_type: Any) -> st.SearchStrategy[Any]:
    """Values of a declared field's type that keep its rules, read off its Meta and Rules."""
    if get_origin(field_type) is Union or type(field_type).__name__ == "UnionType":
        (inner,) = [t for t in get_args(field_type) if t is not type(None)]
        return st.none() | _strategy(inner)
    base, metadata = _parts(field_type)
    meta = next((m for m in metadata if isinstance(m, msgspec.Meta)), msgspec.Meta())
    rules = [m for m in metadata if isinstance(m, Rule)]
    schema = meta.extra_json_schema or {}
    if base is datetime:
        return _timestamps
    if base is int:
        low, high = -(2**63) if meta.ge is None else meta.ge, 2**63 - 1 if meta.le is None else meta.le
        return st.integers(int(low), int(high))
    if isinstance(base, type) and issubclass(base, StrEnum):
        return st.sampled_from(list(base))
    if isinstance(base, type) and issubclass(base, Declared):
        return st.builds(base, **{f.name: _strategy(f.type) for f in msgspec.structs.fields(base)})
    if get_origin(base) is dict:
        return st.dictionaries(st.text(max_size=10), _json, max_size=4)
    if get_origin(base) is tuple:
        return st.lists(_strategy(get_args(base)[0]), min_size=meta.min_length or 0,
                        max_size=min(meta.max_length or 5, 5)).map(tuple)
    assert base is str, f"no strategy for {field_type}"
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    pattern = schema.get("pattern") or meta.pattern
    text = st.from_regex(pattern, fullmatch=True) if pattern else st.text(max_size=30)
    return text.filter(lambda value: (meta.min_length or 0) <= len(value) <= (meta.max_length or 10**6)
                       and all(rule.check(value) for rule in rules))


@st.composite
def _messages(draw: st.DrawFn) -> Message:
    cls = draw(st.sampled_from(MESSAGES))
    return draw(st.builds(cls, **{f.name: _strategy(f.type) for f in msgspec.structs.fields(cls)}))


@given(_messages())
def test_every_declared_message_round_trips_and_keeps_to_its_json_schema(message: Message) -> None:
    raw = encode(message)
    assert decode(type(message), raw) == message
    jsonschema.validate(orjson.loads(raw), msgspec.json.schema(type(message)))
    # The times we write: UTC, milliseconds, Z.
    for name in ("received_at", "occurred_at", "requested_at", "failed_at", "deadline"):
        value = orjson.loads(raw).get(name)
        assert value is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value)


def _recorded_values() -> list[bytes]:
    return (RECORDED / "topic_values.jsonl").read_bytes().splitlines()


def test_the_recording_has_every_schema() -> None:
    assert {orjson.loads(raw)["schema"] for raw in _recorded_values()} == set(BY_SCHEMA)


@pytest.mark.parametrize("raw", _recorded_values(), ids=lambda raw: orjson.loads(raw)["schema"])
def test_recorded_values_of_the_format_before_msgspec_decode_and_are_written_back(raw: bytes) -> None:
    doc = orjson.loads(raw)
    written = orjson.loads(encode(decode(BY_SCHEMA[doc["schema"]], raw)))
    # An audit event's empty data is now left out, as every other unset field is; it reads back {}.
    assert written == {k: v for k, v in doc.items() if not (k == "data" and v == {})}


@pytest.mark.parametrize("line", (RECORDED / "direct_producer_values.jsonl").read_bytes().splitlines())
def test_recorded_direct_producer_values_decode_as_they_did(line: bytes) -> None:
    """Offsets instead of Z, other fraction lengths, explicit nulls: each value read and written
    again is the message the old code wrote for it (``as_written``)."""
    recorded = orjson.loads(line)
    cls = BY_SCHEMA[recorded["as_written"]["schema"]]
    rewritten = encode(decode(cls, recorded["value"].encode()))
    assert decode(cls, rewritten) == decode(cls, orjson.dumps(recorded["as_written"]))


def test_a_refusal_names_every_broken_field_and_says_what_it_must_be() -> None:
    doc = {"schema": "receipt.v1", "project_id": "prj_", "idempotency_key": "has space",
           "reference": "a\u2028b", "event_type": "a b", "effect_type": "x" * 101,
           "received_at": "2026-03-01T08:30:15", "timeout_seconds": True, "mode": "staging",
           "snapshot": {"kid": "k"}, "colour": "red"}
    with pytest.raises(SchemaError) as refused:
        decode(Receipt, orjson.dumps(doc))
    assert refused.value.reason == "invalid_fields"
    named = {part.split(": ", 1)[0] for part in refused.value.detail.split("; ")}
    assert named == set(doc) - {"schema"}
    assert "mode: must be one of test, live" in refused.value.detail
    assert "colour: is not a known field" in refused.value.detail


@given(st.dictionaries(st.sampled_from(["schema", "project_id", "reference", "status", "keys", "data",
                                        "received_at", "occurred_at", "mode", "x"]), _json, max_size=8),
       st.sampled_from(MESSAGES))
def test_any_document_decodes_or_is_refused_with_a_reason(doc: dict[str, Any], cls: type[Message]) -> None:
    try:
        decode(cls, orjson.dumps({"schema": cls.schema(), **doc}))
    except SchemaError as refused:
        assert refused.reason in {"wrong_schema", "invalid_fields"} and refused.detail


@pytest.mark.parametrize(("field_type", "pattern"), [
    (ProjectId, PROJECT_ID_PATTERN), (ReplayId, REPLAY_ID_PATTERN), (TypeName, TYPE_NAME_PATTERN),
    (IdempotencyKey, IDEMPOTENCY_KEY_PATTERN), (Reference, PRINTABLE),
])
@given(data=st.data())
def test_a_fields_checks_agree_with_the_pattern_its_schema_states(field_type: Any, pattern: str,
                                                                  data: st.DataObject) -> None:
    """The Rules check in Python what the JSON Schema's pattern says (msgspec's own pattern check
    costs ~0.5 µs a field); a value the pattern refuses, the Rules refuse too."""
    value = data.draw(st.from_regex(pattern, fullmatch=True) | st.text(max_size=70))
    _, metadata = _parts(field_type)
    meta = next(m for m in metadata if isinstance(m, msgspec.Meta))
    in_length = (meta.min_length or 0) <= len(value) <= (meta.max_length or 10**6)
    kept = in_length and all(m.check(value) for m in metadata if isinstance(m, Rule))
    if not re.fullmatch(pattern.strip("^$"), value) or not in_length:
        assert not kept
    elif field_type is not Reference:  # isprintable refuses more than a portable pattern can say
        assert kept


def test_a_snapshot_envelope_keeps_its_wire_names() -> None:
    envelope = Snapshot(key_id="k1", nonce="bm9uY2U=", ciphertext="Y3Q=")
    wire = {"kid": "k1", "nonce": "bm9uY2U=", "ct": "Y3Q="}
    assert msgspec.to_builtins(envelope) == envelope.to_dict() == wire


def _recorded_flows() -> list[dict[str, Any]]:
    events = [orjson.loads(raw) for raw in _recorded_values()]
    return [event["data"] for event in events
            if event["schema"] == "audit.v1" and event["action"].startswith("flow.")
            and event["action"] != "flow.forgotten"]


@pytest.mark.parametrize("data", _recorded_flows(), ids=lambda data: data["status"])
def test_the_flow_of_a_recorded_transition_or_repeat_reads_as_a_flow_record(data: dict[str, Any]) -> None:
    """What the agents carried in their audit events before the flow record was declared reads,
    and writes back the same (the event's own extras, previous_status or receipts, aside)."""
    record = FlowRecord.from_data(data)
    assert record.data() == {name: data[name] for name in record.data()}
    assert set(data) - set(record.data()) <= {"previous_status", "cause", "receipts", "last_receipt_at"}


@given(_strategy(FlowRecord))
def test_a_flow_record_round_trips_through_an_audit_events_data(record: FlowRecord) -> None:
    assert FlowRecord.from_data(orjson.loads(orjson.dumps(record.data()))) == record


def test_a_flow_record_without_its_fields_is_refused_naming_them() -> None:
    with pytest.raises(FieldErrors) as refused:
        FlowRecord.from_data({"reference": "r", "mode": "staging", "cycle": 0, "cause": "receipt"})
    assert {field for field, _ in refused.value.errors} == {
        "mode", "cycle", "status", "event_type", "effect_type", "received_at", "deadline", "version"}
