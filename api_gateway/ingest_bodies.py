"""The bodies of ``POST /api/v1/receipt`` and ``POST /api/v1/result`` (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from topics.fields import (
    MAX_DETAIL_BYTES,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    RESULT_STATUSES,
    Checker,
)

MAX_PAYLOAD_BYTES = 32 * 1024
MAX_TIMEOUT_MINUTES = MAX_TIMEOUT_SECONDS // 60


@dataclass(frozen=True)
class ReceiptBody:
    reference: str
    event_type: str
    effect_type: str
    timeout_seconds: int | None
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class ResultBody:
    reference: str
    status: str
    replay_id: str | None
    detail: str | None


_RECEIPT_FIELDS = frozenset({"reference", "event_type", "effect_type", "timeout_minutes", "timeout_seconds",
                             "payload"})
_RESULT_FIELDS = frozenset({"reference", "status", "replay_id", "detail"})


def parse_receipt(doc: Any) -> ReceiptBody:
    check = Checker(doc, allowed=_RECEIPT_FIELDS)
    reference = check.reference()
    event_type = check.type_name("event_type")
    effect_type = check.type_name("effect_type")
    minutes = check.integer("timeout_minutes", 1, MAX_TIMEOUT_MINUTES)
    seconds = check.integer("timeout_seconds", MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)
    if minutes is not None and seconds is not None:
        check.fail("timeout_seconds", "give timeout_minutes or timeout_seconds, not both")
    payload = check.obj("payload")
    if payload is not None and len(orjson.dumps(payload)) > MAX_PAYLOAD_BYTES:
        check.fail("payload", f"must be at most {MAX_PAYLOAD_BYTES} bytes as JSON")
    check.done()
    return ReceiptBody(
        reference=reference, event_type=event_type, effect_type=effect_type,  # type: ignore[arg-type]
        timeout_seconds=seconds if minutes is None else minutes * 60, payload=payload,
    )


def parse_result(doc: Any) -> ResultBody:
    check = Checker(doc, allowed=_RESULT_FIELDS)
    reference = check.reference()
    status = check.choice("status", RESULT_STATUSES)
    replay_id = check.replay_id()
    detail = check.text("detail", MAX_DETAIL_BYTES)
    check.done()
    return ResultBody(reference=reference, status=status, replay_id=replay_id, detail=detail)  # type: ignore[arg-type]
