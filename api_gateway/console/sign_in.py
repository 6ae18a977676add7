"""The console's way in and out: the sign-in page and form, sign-out, and ``/``."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from api_gateway.console.forms import forged, read_form, see_other, text
from api_gateway.console.pages import render
from api_gateway.console.sessions import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SignInRefused,
    clear_cookie,
    session_of,
    set_cookie,
    sign_in,
    sign_out,
)
from api_gateway.operator_api.common import operator_of

HOME = "/projects"


def _next(value: str | None) -> str:
    """Where to go after signing in: a path of the console only (never another site)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return HOME


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(HOME)


async def form(request: web.Request) -> web.Response:
    if await session_of(request) is not None:
        raise web.HTTPSeeOther(_next(request.query.get("next")))
    return _form(request, next_path=_next(request.query.get("next")),
                 notice="You are signed out." if "signed_out" in request.query else None)


def _form(request: web.Request, *, next_path: str, email: str = "", error: str | None = None,
          notice: str | None = None, status: int = 200) -> web.Response:
    # No session yet: the form's CSRF token is checked against a cookie of its own.
    token = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "sign_in.html", status=status, sign_in_token=token, next_path=next_path,
                      email=email, error=error, notice=notice)
    set_cookie(response, request, SIGN_IN_COOKIE, token)
    return response


async def submit(request: web.Request) -> web.Response:
    posted = await request.post()
    token, cookie = text(posted, "csrf_token"), request.cookies.get(SIGN_IN_COOKIE, "")
    if not cookie or not hmac.compare_digest(token, cookie):
        raise forged()
    email, next_path = text(posted, "email").strip(), _next(text(posted, "next"))
    try:
        signed_in = await sign_in(request, email, text(posted, "password"))
    except SignInRefused as refused:
        return _form(request, next_path=next_path, email=email, error=str(refused), status=401)
    response = see_other(next_path)
    set_cookie(response, request, SESSION_COOKIE, signed_in.token)
    clear_cookie(response, SIGN_IN_COOKIE)
    return response


async def submit_sign_out(request: web.Request) -> web.Response:
    await read_form(request)
    await sign_out(request, operator_of(request))
    response = see_other("/sign-in?signed_out=1")
    clear_cookie(response, SESSION_COOKIE)
    return response
