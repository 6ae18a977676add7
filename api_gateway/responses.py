"""JSON answers and the wire form of each resource (ids, RFC 3339 times, no secrets)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import orjson
from aiohttp import web

from api_gateway.problems import Problem
from topics.fields import format_timestamp

T = TypeVar("T")


# Times go through ``_default`` so every answer writes them one way: RFC 3339, UTC, ms, "Z".
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def json_response(status: int, doc: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc, default=_default, option=_OPTIONS),
                        content_type="application/json")


def json_document(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with times and sets in their wire form (what ``json_response`` would send)."""
    wire: dict[str, Any] = orjson.loads(orjson.dumps(doc, default=_default, option=_OPTIONS))
    return wire


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def page(rows: list[T], limit: int, document: Callable[[T], Any],
         cursor_of: Callable[[T], list[Any]]) -> dict[str, Any]:
    """``{"items", "next_cursor"}`` with at most ``limit`` items; the caller fetched one row more
    than ``limit`` to know whether another page exists."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [document(r) for r in rows],
            "next_cursor": encode_cursor(cursor_of(rows[-1])) if more and rows else None}


def encode_cursor(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(
        orjson.dumps(parts, default=_default, option=_OPTIONS),
    ).decode().rstrip("=")


def decode_cursor(request: web.Request, arity: int) -> list[Any] | None:
    raw = request.query.get("cursor")
    if raw is None or raw == "":
        return None
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        parts = None
    if not isinstance(parts, list) or len(parts) != arity:
        raise Problem(400, "invalid-cursor", "Invalid cursor",
                      "The cursor is not one this API gave out; start without it.")
    return parts


PAGING_PARAMS = ("cursor", "limit")


def list_params(request: web.Request, *filters: str) -> int:
    """The page size of a list request whose query may hold paging and ``filters``, nothing else:
    a misspelt or unsupported filter is a 400, never silently ignored (which would answer an
    unfiltered list the caller takes for a filtered one)."""
    only_params(request, "list", *filters, *PAGING_PARAMS)
    return limit_param(request)


def only_params(request: web.Request, what: str, *accepted: str) -> None:
    """Refuse (400) a query parameter of ``what`` (a list, a lookup) other than ``accepted``."""
    unknown = sorted(set(request.query) - set(accepted))
    if unknown:
        takes = f"it accepts {', '.join(accepted)}" if accepted else "it takes none"
        raise Problem(400, "unknown-query-parameter", "Unknown query parameter",
                      f"This {what} does not take {', '.join(unknown)}; {takes}.",
                      errors=[(name, f"is not a parameter of this {what}") for name in unknown])


def invalid_query(name: str, rule: str) -> Problem:
    """A query parameter whose value breaks its rule: 400 naming it."""
    return Problem(400, "invalid-query-parameter", "Invalid query parameter", f"{name} {rule}.",
                   errors=[(name, rule)])


def limit_param(request: web.Request, default: int = 50, maximum: int = 200) -> int:
    raw = request.query.get("limit", str(default))
    # isdigit() alone accepts "²"; the length bound keeps int() off absurdly long strings.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= maximum:
        raise Problem(400, "invalid-limit", "Invalid limit",
                      f"limit must be a whole number from 1 to {maximum}.",
                      errors=[("limit", f"must be 1 to {maximum}")])
    return int(raw)
