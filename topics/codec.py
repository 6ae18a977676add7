"""Bytes on the wire: JSON (UTF-8) values that carry their ``schema`` tag."""

from __future__ import annotations

from typing import TypeVar

import msgspec
import orjson

from topics.declared import Message, field_errors, json_decoder, to_json, without_nulls
from topics.fields import FieldErrors

M = TypeVar("M", bound=Message)


class SchemaError(ValueError):
    """A message cannot be used; ``reason`` is short enough for a dead-letter record and a metric
    label (``not_json``, ``invalid_fields``, ...), ``detail`` says which fields and why."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def encode(message: Message) -> bytes:
    return to_json(message)


def decode(cls: type[M], raw: bytes | None) -> M:
    if raw is None:
        raise SchemaError("empty_value", "the message has no value (a tombstone?)")
    try:
        message: M = json_decoder(cls).decode(raw)  # a cached decoder's type is lost to @cache
        return message
    except msgspec.DecodeError as exc:
        if not isinstance(exc, msgspec.ValidationError):
            raise SchemaError("not_json", f"the value is not UTF-8 JSON: {exc}") from None
    # Refused: say why as the hand-written readers did, naming every broken field rule.
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # what msgspec read, orjson may not (a lone surrogate)
        raise SchemaError("not_json", f"the value is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SchemaError("not_object", "the value must be a JSON object")
    if doc.get("schema") != cls.schema():
        raise SchemaError("wrong_schema", f"expected schema {cls.schema()!r}, got {doc.get('schema')!r}")
    try:
        errors = field_errors(cls, doc)
        if not errors:
            return without_nulls(cls, doc)
    except FieldErrors as exc:
        errors = exc.errors
    raise SchemaError("invalid_fields", "; ".join(f"{field}: {message}" for field, message in errors))
