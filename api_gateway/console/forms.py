"""Console forms: the CSRF token and one-time key every form carries, field errors shown beside
their fields, and running a form's action the way the operator API runs it."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDictProxy

from api_gateway.console.pages import SESSION
from api_gateway.http_input import FORM_IDEMPOTENCY_KEY, valid_idempotency_key
from api_gateway.idempotency import run_idempotent
from api_gateway.operator_api.common import operator_of
from api_gateway.problems import Problem, invalid_fields
from store.db import Connection
from topics.fields import FieldErrors

T = TypeVar("T")

CSRF_FIELD = "csrf_token"
KEY_FIELD = "form_key"
# A second submission of a form (a double click) waits this long at most for the first to finish,
# then shows its answer.
IN_FLIGHT_WAIT_SECONDS = 10.0

FieldMessages = dict[str, str]


def forged() -> Problem:
    return Problem(403, "form-refused", "Form refused",
                   "This form did not come from your console session (its security token is missing "
                   "or from an earlier session). Go back, reload the page and send it again.")


async def read_form(request: web.Request) -> MultiDictProxy[str | Any]:
    """The posted form, once its CSRF token matches the session's; its one-time key becomes the
    action's Idempotency-Key."""
    form = await request.post()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not hmac.compare_digest(token, request[SESSION].csrf_token):
        raise forged()
    key = form.get(KEY_FIELD)
    if not isinstance(key, str) or not valid_idempotency_key(key):
        raise Problem(400, "form-key-missing", "Form incomplete",
                      "The form lacks its one-time key; reload the page and send it again.")
    request[FORM_IDEMPOTENCY_KEY] = key
    return form


def text(form: MultiDictProxy[str | Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def parsed(parse: Callable[[Any], T], doc: dict[str, Any]) -> T:
    """``doc`` checked by the operator API's own parser: a broken rule is the API's 422."""
    try:
        return parse(doc)
    except FieldErrors as exc:
        raise invalid_fields(exc.errors) from None


def field_messages(problem: Problem) -> FieldMessages:
    return {field: message for field, message in problem.errors or []}


async def act(request: web.Request, action: Callable[[Connection], Awaitable[web.Response]],
              refused: Callable[[Problem], Awaitable[web.Response]]) -> web.Response:
    """Run a form's action like the API runs its own (idempotent, in one transaction with its
    audit entry); a refusal (4xx) is shown by ``refused``, mostly the form again with its errors."""
    return await answered(
        lambda: run_idempotent(request, operator_of(request).id, action, store_refusals=False), refused)


async def answered(run: Callable[[], Awaitable[web.Response]],
                   refused: Callable[[Problem], Awaitable[web.Response]]) -> web.Response:
    """``run()``'s answer, or ``refused``'s page for a refusal. A second submission of one form
    (a double click) while the first still runs waits for the first's answer and shows it."""
    waited = 0.0
    while True:
        try:
            return await run()
        except Problem as problem:
            if problem.slug == "idempotency-key-in-flight" and waited < IN_FLIGHT_WAIT_SECONDS:
                await asyncio.sleep(0.1)
                waited += 0.1
                continue
            if problem.status >= 500:
                raise
            return await refused(problem)


def see_other(location: str) -> web.Response:
    """After a form's action: the browser fetches the page anew (a reload does not post again).
    Returned, not raised: the action's transaction commits with it."""
    return web.Response(status=303, headers={"Location": location})
