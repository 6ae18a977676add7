"""Each request's id in its log lines (JSON logs): the caller's ``X-Request-Id`` when it is a
plain token, so a request can be followed from the caller's own logs, else a new one."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from common.observability import log_context

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@web.middleware
async def request_context_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    with log_context(request_id=given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)):
        return await handler(request)
