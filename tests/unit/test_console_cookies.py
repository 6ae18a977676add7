"""The console's cookies are Secure whenever the browser reached it over https: directly, or through
a proxy that ends TLS (the gateway then sees plain http, and the public console URL says https)."""

from __future__ import annotations

import ssl

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from api_gateway.console.sessions import set_cookie
from api_gateway.state import SETTINGS
from common.config import Settings


@pytest.mark.parametrize(("console_url", "tls_here", "secure"), [
    ("https://sendpromptly.example.com", False, True),  # behind a TLS-ending proxy
    ("http://127.0.0.1:8080", True, True),  # TLS on the gateway itself
    ("http://127.0.0.1:8080", False, False),  # the local stack
])
def test_a_cookie_is_secure_when_the_browser_came_over_https(console_url: str, tls_here: bool,
                                                              secure: bool) -> None:
    app = web.Application()
    app[SETTINGS] = Settings(console_url=console_url)
    request = make_mocked_request("POST", "/sign-in", app=app,
                                  sslcontext=ssl.create_default_context() if tls_here else None)
    response = web.Response()
    set_cookie(response, request, "sp_session", "token")
    cookie = response.cookies["sp_session"]
    assert bool(cookie["secure"]) is secure
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
