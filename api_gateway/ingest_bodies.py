"""The bodies of ``POST /api/v1/receipt`` and ``POST /api/v1/result``, declared
once with the topic messages' field rules; the OpenAPI document derives their schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import orjson
from msgspec import Meta
from msgspec.structs import force_setattr

from topics.declared import Declared, convert
from topics.fields import (
    MAX_TIMEOUT_SECONDS,
    Detail,
    Reference,
    ReplayId,
    ResultStatus,
    Rule,
    TimeoutSeconds,
    TypeName,
)

MAX_PAYLOAD_BYTES = 32 * 1024
MAX_TIMEOUT_MINUTES = MAX_TIMEOUT_SECONDS // 60

TimeoutMinutes = Annotated[int, Meta(
    ge=1, le=MAX_TIMEOUT_MINUTES, description=f"a whole number of minutes from 1 to {MAX_TIMEOUT_MINUTES}")]
Payload = Annotated[dict[str, Any], Meta(description=(
    f"a JSON object of at most {MAX_PAYLOAD_BYTES} bytes as compact JSON; kept (encrypted) only when the "
    "project has snapshots enabled")),
    Rule(lambda payload: len(orjson.dumps(payload)) <= MAX_PAYLOAD_BYTES,
         f"a JSON object of at most {MAX_PAYLOAD_BYTES} bytes as JSON")]


class ReceiptBody(Declared, frozen=True, kw_only=True):
    """timeout_minutes or timeout_seconds, not both; without either, the project's applies."""

    BOTH_TIMEOUTS: ClassVar[tuple[str, str]] = ("timeout_minutes", "timeout_seconds")
    JSON_SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {"not": {"required": list(BOTH_TIMEOUTS)}}

    reference: Reference
    event_type: TypeName
    effect_type: TypeName
    timeout_minutes: TimeoutMinutes | None = None
    # Read: the receipt's own timeout, timeout_minutes given as seconds.
    timeout_seconds: TimeoutSeconds | None = None
    payload: Payload | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for field, message in self.cross_field_errors({"timeout_minutes": self.timeout_minutes,
                                                        "timeout_seconds": self.timeout_seconds}):
            raise ValueError(f"{field}: {message}")
        if self.timeout_minutes is not None:
            force_setattr(self, "timeout_seconds", self.timeout_minutes * 60)
            force_setattr(self, "timeout_minutes", None)

    @classmethod
    def cross_field_errors(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        if all(values.get(name) is not None for name in cls.BOTH_TIMEOUTS):
            return [("timeout_seconds", "give timeout_minutes or timeout_seconds, not both")]
        return []


class ResultBody(Declared, frozen=True, kw_only=True):
    reference: Reference
    status: ResultStatus
    replay_id: ReplayId | None = None
    detail: Detail | None = None


def parse_receipt(doc: Any) -> ReceiptBody:
    return convert(ReceiptBody, doc)


def parse_result(doc: Any) -> ResultBody:
    return convert(ResultBody, doc)
