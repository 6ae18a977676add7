"""Reading a request: content type, size, JSON, the Idempotency-Key header — with the right errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from api_gateway.problems import Problem, invalid_fields
from topics.fields import FieldErrors

T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024
# A batch of signals (api_gateway/ingest_batch.py) may be larger; nothing else is.
MAX_BATCH_BYTES = 1024 * 1024
_IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")


async def json_body(request: web.Request, *, max_bytes: int = MAX_BODY_BYTES) -> Any:
    if request.content_type != "application/json":
        raise Problem(
            415, "unsupported-media-type", "Unsupported Media Type",
            f"Send the body as Content-Type: application/json (got {request.content_type or 'none'!r}).",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(max_bytes) from None
    if len(raw) > max_bytes:  # sent chunked, without a length
        raise _too_large(max_bytes)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "malformed-json", "Malformed JSON",
                      f"The body is not valid JSON: {exc}.") from None


async def parsed_body(request: web.Request, parse: Callable[[Any], T]) -> T:
    """The JSON body, checked by ``parse``; every broken field rule becomes one 422."""
    return checked(await json_body(request), parse)


def checked(doc: Any, parse: Callable[[Any], T]) -> T:
    """``doc`` checked by ``parse``; every broken field rule becomes one 422."""
    try:
        return parse(doc)
    except FieldErrors as exc:
        raise invalid_fields(exc.errors) from None


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, "payload-too-large", "Payload Too Large",
                   f"The body must be at most {max_bytes} bytes.")


def valid_idempotency_key(value: str) -> bool:
    return _IDEMPOTENCY_KEY_RE.fullmatch(value) is not None


# A console form carries its Idempotency-Key in a hidden field (a browser's form post cannot set
# a header); the console checks it and keeps it on the request under this name.
FORM_IDEMPOTENCY_KEY = "sendpromptly.form_idempotency_key"


def idempotency_key(request: web.Request) -> str:
    form_key: str | None = request.get(FORM_IDEMPOTENCY_KEY)
    if form_key is not None:
        return form_key
    values = request.headers.getall("Idempotency-Key", [])
    if len(values) > 1:
        # Which one the client meant is a guess, and guessing wrong replays another operation.
        raise Problem(400, "idempotency-key-repeated", "More than one Idempotency-Key",
                      f"The request carries {len(values)} Idempotency-Key headers; send exactly one.")
    value = values[0] if values else None
    if value is None:
        raise Problem(
            400, "idempotency-key-required", "Idempotency-Key required",
            "Every POST, PUT, PATCH and DELETE needs an Idempotency-Key header (1-255 visible ASCII "
            "characters), unique per intended operation; reuse it when you retry.",
        )
    if not valid_idempotency_key(value):
        raise Problem(
            400, "idempotency-key-invalid", "Invalid Idempotency-Key",
            "The Idempotency-Key header must be 1-255 visible ASCII characters (no spaces).",
        )
    return value
