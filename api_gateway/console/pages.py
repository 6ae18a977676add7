"""Rendering console pages: the Jinja2 environment, what every page knows (the operator, the
session's CSRF token, a one-time key per form), and HTML error pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from api_gateway.problems import Problem
from api_gateway.state import OPERATOR
from store.console_sessions import Session

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
# Set on the request by the console middleware, next to the operator.
SESSION = "sendpromptly.console_session"
# Pages that change with the data say so; the rest are private to the operator's browser anyway.
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self';"
                                " img-src 'self' data:; frame-ancestors 'none'; form-action 'self';"
                                " base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def when(value: datetime | None) -> str:
    """A time as the console shows it: UTC to the second."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def setup_pages(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["when"] = when


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session: Session | None = request.get(SESSION)
    response = aiohttp_jinja2.render_template(template, request, {
        "operator": request.get(OPERATOR), "csrf_token": session.csrf_token if session else None,
        # Each form rendered gets a key of its own: sent twice (a double click), it acts once.
        "new_form_key": lambda: uuid.uuid4().hex, **context,
    }, status=status)
    response.headers.update(_HEADERS)
    return response


def error_page(request: web.Request, problem: Problem) -> web.Response:
    response = render(request, "error.html", status=problem.status, problem=problem)
    response.headers.update(problem.headers)
    return response
