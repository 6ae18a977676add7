"""Bytes on the wire: JSON (UTF-8) values that carry their ``schema`` tag."""

from __future__ import annotations

from typing import TypeVar

import orjson

from topics.fields import FieldErrors
from topics.messages import Message

M = TypeVar("M", bound=Message)


class SchemaError(ValueError):
    """A message cannot be used; ``reason`` is short enough for a dead-letter record and a metric
    label (``not_json``, ``invalid_fields``, ...), ``detail`` says which fields and why."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def encode(message: Message) -> bytes:
    return orjson.dumps(message.to_dict())


def decode(cls: type[M], raw: bytes | None) -> M:
    if raw is None:
        raise SchemaError("empty_value", "the message has no value (a tombstone?)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError("not_json", f"the value is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SchemaError("not_object", "the value must be a JSON object")
    if doc.get("schema") != cls.SCHEMA:
        raise SchemaError("wrong_schema", f"expected schema {cls.SCHEMA!r}, got {doc.get('schema')!r}")
    try:
        return cls.from_dict(doc)
    except FieldErrors as exc:
        raise SchemaError("invalid_fields", str(exc)) from None
