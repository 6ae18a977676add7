"""The console's middleware: a session for the pages that need one, HTML error pages for every
page (the API keeps its problem+json), and the headers every page carries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from api_gateway.console.pages import SESSION, error_page
from api_gateway.console.sessions import session_of
from api_gateway.problems import as_problem
from api_gateway.state import OPERATOR

# Route names: ``console.*`` pages need a signed-in operator, ``page.*`` are public (sign-in, the
# API reference, static files).
SIGNED_IN_PREFIX = "console."
PUBLIC_PREFIX = "page."


def _is_page(request: web.Request) -> bool:
    name = request.match_info.route.name or ""
    if name.startswith((SIGNED_IN_PREFIX, PUBLIC_PREFIX)):
        return True
    # No route matched: an HTML 404 unless the path is the API's.
    return request.match_info.http_exception is not None and not request.path.startswith("/api/")


@web.middleware
async def console_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not _is_page(request):
        return await handler(request)
    try:
        if (request.match_info.route.name or "").startswith(SIGNED_IN_PREFIX):
            signed_in = await session_of(request)
            if signed_in is None:
                # Signed out, expired, or a post from elsewhere: nothing happens, sign in first.
                raise web.HTTPSeeOther("/sign-in?next=" + quote(request.path_qs if request.method == "GET"
                                                               else "/projects", safe=""))
            request[OPERATOR], request[SESSION] = signed_in
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(request, as_problem(request, exc))
    except Exception as exc:
        return error_page(request, as_problem(request, exc))
