"""Signing in and out of the console: server-side sessions behind an HttpOnly cookie, and the
slow-down and lock-out of repeated failed sign-ins, each audited."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn
from urllib.parse import urlsplit

from aiohttp import web

from api_gateway.control_plane import Actor
from api_gateway.state import POOL, SETTINGS
from common.operator_tokens import hash_password, verify_password
from store import console_sessions, operators
from store.console_sessions import Session
from store.operators import Operator

SESSION_COOKIE = "sp_session"
# Before a session exists the sign-in form's CSRF token is checked against this cookie instead.
SIGN_IN_COOKIE = "sp_sign_in"
SESSION_LIFETIME = timedelta(hours=8)
# Five failures within a quarter of an hour lock the email out for a quarter of an hour; every
# failure is answered only after a pause, which slows a guesser further.
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_AFTER_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
FAILURE_PAUSE_SECONDS = 0.5
# Verified against when the email is unknown, so that an unknown email costs the same time.
_UNKNOWN_EMAIL_HASH = hash_password(secrets.token_urlsafe(18))


class SignInRefused(Exception):
    """The sign-in failed; the message says what to do."""


@dataclass(frozen=True)
class SignedIn:
    operator: Operator
    token: str  # the cookie's value; only its hash is stored


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _actor(request: web.Request, operator: Operator | None, email: str) -> Actor:
    name = f"operator:{operator.id}" if operator else "console:sign-in"
    return Actor(name, {"operator_email": email}, request.remote)


async def sign_in(request: web.Request, email: str, password: str) -> SignedIn:
    """A new session for the operator with this email and password, or ``SignInRefused``."""
    pool = request.app[POOL]
    async with pool.connection() as conn:
        locked = await console_sessions.locked_until(conn, email)
        operator = await operators.find_by_email(conn, email)
        stored = None if operator is None else await operators.password_hash_of(conn, operator.id)
    if locked is not None:
        raise SignInRefused(_locked_message(locked))
    # argon2 takes tens of milliseconds of CPU: off the event loop.
    matches = await asyncio.to_thread(verify_password, stored or _UNKNOWN_EMAIL_HASH, password)
    if operator is None or operator.deactivated_at is not None or stored is None or not matches:
        await _failed(request, email, operator)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with pool.connection() as conn, conn.transaction():
        await console_sessions.clear_failures(conn, email)
        await console_sessions.start_session(conn, _hash(token), operator.id, csrf, SESSION_LIFETIME)
        await _actor(request, operator, email).record_for_operator(conn, operator,
                                                                   action="operator.signed_in")
    return SignedIn(operator, token)


async def _failed(request: web.Request, email: str, operator: Operator | None) -> NoReturn:
    async with request.app[POOL].connection() as conn, conn.transaction():
        failures, locked = await console_sessions.record_failure(
            conn, email, window=FAILURE_WINDOW, lock_after=LOCK_AFTER_FAILURES, lock_for=LOCK_FOR)
        actor = _actor(request, operator, email)
        for action in ("operator.sign_in_failed", *(["operator.locked_out"] if locked else [])):
            data = {"failures": failures, "locked_until": locked}
            if operator is None:
                await actor.record(conn, project_id=None, action=action, target=f"email:{email.lower()}",
                                   data=data)
            else:
                await actor.record_for_operator(conn, operator, action=action, data=data)
    await asyncio.sleep(FAILURE_PAUSE_SECONDS)
    if locked is not None:
        raise SignInRefused(_locked_message(locked))
    raise SignInRefused("The email or the password is wrong. Check both and try again; after "
                        f"{LOCK_AFTER_FAILURES} failed attempts sign-in is locked for "
                        f"{int(LOCK_FOR.total_seconds() // 60)} minutes.")


def _locked_message(until: datetime) -> str:
    return (f"Too many failed sign-ins for this email: sign-in is locked until {until:%H:%M} UTC. "
            "Try again then, or ask an admin to check the audit log.")


async def session_of(request: web.Request) -> tuple[Operator, Session] | None:
    """The signed-in operator and their session, from the request's cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with request.app[POOL].connection() as conn:
        session = await console_sessions.live_session(conn, _hash(token))
        operator = None if session is None else await operators.get_operator(conn, session.operator_id)
    return None if session is None or operator is None else (operator, session)


async def sign_out(request: web.Request, operator: Operator) -> None:
    token = request.cookies.get(SESSION_COOKIE, "")
    async with request.app[POOL].connection() as conn, conn.transaction():
        if await console_sessions.end_session(conn, _hash(token)) is not None:
            await _actor(request, operator, operator.email).record_for_operator(
                conn, operator, action="operator.signed_out")


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
    """HttpOnly and SameSite=Lax always, Secure when the console is served over https. Without
    max-age: the browser forgets it when it closes, and the server forgets the session by then."""
    response.set_cookie(name, value, path="/", httponly=True, samesite="Lax",
                        secure=served_over_https(request))


def served_over_https(request: web.Request) -> bool:
    """Whether the browser reached the console over https: this request was, or the console's public
    URL says so (behind a proxy that ends TLS, the gateway itself sees plain http)."""
    return request.secure or urlsplit(request.app[SETTINGS].console_url).scheme == "https"


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path="/")
