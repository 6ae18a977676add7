"""``/api/v1/projects/{id}/repair-callback``: the URL SendPromptly calls on reprocess, its
signing secret (``whsec_...``), shown when created or rotated and never again, and test callbacks."""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiohttp import web

from api_gateway.http_input import parsed_body
from api_gateway.idempotency import run_idempotent, with_secret_redacted
from api_gateway.operator_api.bodies import parse_callback
from api_gateway.operator_api.common import operator_of, record_audit, visible_project
from api_gateway.operator_api.projects import hold_live_prerequisites
from api_gateway.problems import Problem, invalid_fields
from api_gateway.responses import json_response
from api_gateway.state import POOL, SECRETS_KEYRING, SETTINGS
from common.callback_body import TEST_REPLAY_PREFIX, TestCallbackBody
from common.callback_policy import verdict
from common.callback_request import Outcome, post_signed, signed_headers, signing_target
from common.callback_secrets import encrypt_secret
from common.receiver import SECRET_PREFIX
from common.safe_http import outbound_session
from common.targets import TargetError, check_url
from store import callbacks, projects
from store.db import Connection
from store.projects import Project
from topics.declared import to_json
from topics.fields import Mode

SECRET_BYTES = 32
# A test waits less than a repair attempt (10 s): an operator is looking at the page meanwhile.
TEST_TIMEOUT_SECONDS = 5.0


def new_signing_secret() -> str:
    # Standard Webhooks form: whsec_ + base64 of the raw key bytes.
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


async def put(request: web.Request) -> web.Response:
    url = await parsed_body(request, parse_callback)

    async def action(conn: Connection) -> web.Response:
        return _with_secret({"url": url}, await set_callback(request, conn, url))

    return await run_idempotent(request, operator_of(request).id, action)


async def set_callback(request: web.Request, conn: Connection, url: str) -> str:
    """Set the path's project's repair callback URL; returns its new signing secret (shown once)."""
    project = await visible_project(request, conn)
    try:
        await check_url(url, require_https=project.mode == Mode.LIVE,
                        allow_private=request.app[SETTINGS].allow_private_targets)
    except TargetError as exc:
        live = " (the project is live: live mode needs https)" if project.mode == Mode.LIVE else ""
        raise invalid_fields([("url", f"{exc}{live}")]) from None
    await projects.update_project(conn, project.id, {"repair_callback_url": url})
    await hold_live_prerequisites(request, conn, project.id)
    secret = new_signing_secret()
    secret_enc = encrypt_secret(request.app[SECRETS_KEYRING], project.id, secret)
    # The previous secret keeps signing for the rotation's overlap: a receiver that moves to the
    # new URL (often the same app) verifies with the secret it has until it takes the new one.
    await callbacks.replace_secret(conn, project.id, secret_enc)
    await record_audit(conn, request, project_id=project.id, action="callback.set", target=project.id,
                       data={"url": url, "previous_url": project.repair_callback_url,
                             "previous_secret_valid_for_hours": overlap_hours()})
    return secret


async def rotate_secret(request: web.Request) -> web.Response:
    async def action(conn: Connection) -> web.Response:
        url, secret = await rotate_signing_secret(request, conn)
        return _with_secret({"url": url}, secret)

    return await run_idempotent(request, operator_of(request).id, action)


async def rotate_signing_secret(request: web.Request, conn: Connection) -> tuple[str, str]:
    """A new signing secret for the path's project's callback: its URL and the secret (shown once).
    The previous secret keeps signing for ``overlap_hours()``."""
    project = await visible_project(request, conn)
    if project.repair_callback_url is None:
        raise _no_callback("the project has no repair callback URL")
    secret = new_signing_secret()
    secret_enc = encrypt_secret(request.app[SECRETS_KEYRING], project.id, secret)
    await callbacks.replace_secret(conn, project.id, secret_enc)
    await record_audit(conn, request, project_id=project.id, action="callback.secret_rotated",
                       target=project.id, data={"previous_secret_valid_for_hours": overlap_hours()})
    return project.repair_callback_url, secret


async def read(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        project = await visible_project(request, conn)
        secrets = await callbacks.active_secrets(conn, project.id)
    return json_response(200, {
        "url": project.repair_callback_url,
        "secrets": [{"created_at": s.created_at, "retires_at": s.retired_at} for s in secrets],
    })


def _no_callback(reason: str) -> Problem:
    return Problem(409, "no-callback", "No repair callback",
                   f"Not possible now: {reason}. Set the repair callback URL first "
                   "(PUT .../repair-callback); it comes with a secret.")


@dataclass(frozen=True)
class CallbackTest:
    url: str
    replay_id: str
    sent_at: datetime
    outcome: Outcome

    @property
    def verdict(self) -> str:
        """What the callbacks sink would make of this answer to a repair."""
        return verdict(self.outcome.http_status).value

    def document(self) -> dict[str, object]:
        return {"url": self.url, "replay_id": self.replay_id, "sent_at": self.sent_at,
                "http_status": self.outcome.http_status, "latency_ms": self.outcome.latency_ms,
                "error": self.outcome.error, "verdict": self.verdict}


async def send_test(request: web.Request) -> web.Response:
    """200 with what came of the test, whatever the receiver did (its status, or why no answer
    came): the request to the receiver was made, and that is what the answer reports. Stored under
    the Idempotency-Key like any answer, so a retry with the same key shows it again; a new key
    sends a new test."""
    async def action(conn: Connection) -> web.Response:
        return json_response(200, (await test_callback(request, conn)).document())

    return await run_idempotent(request, operator_of(request).id, action)


async def test_callback(request: web.Request, conn: Connection) -> CallbackTest:
    """Send one test request to the path's project's callback now: signed with the secrets that
    sign repairs, through the same address checks as the callbacks sink; audited as
    ``callback.tested``. The body says ``"test": true`` and names no flow, so a receiver reruns
    nothing."""
    project = await visible_project(request, conn)
    target = signing_target(project, await callbacks.active_secrets(conn, project.id),
                            request.app[SECRETS_KEYRING])
    if isinstance(target, str):
        raise _no_callback(target)
    replay_id = TEST_REPLAY_PREFIX + secrets.token_hex(8)
    sent_at = datetime.now(UTC)
    raw_body = to_json(_test_body(project, replay_id, sent_at))
    headers = signed_headers(replay_id, int(sent_at.timestamp()), raw_body, target.secrets)
    async with outbound_session(allow_private=request.app[SETTINGS].allow_private_targets,
                                timeout_seconds=TEST_TIMEOUT_SECONDS) as session:
        outcome, _ = await post_signed(session, target.url, raw_body, headers)
    tested = CallbackTest(target.url, replay_id, sent_at, outcome)
    await record_audit(conn, request, project_id=project.id, action="callback.tested", target=project.id,
                       data=tested.document())
    return tested


def _test_body(project: Project, replay_id: str, sent_at: datetime) -> TestCallbackBody:
    return TestCallbackBody(test=True, replay_id=replay_id, attempt=1, nonce=secrets.token_urlsafe(16),
                        project_id=project.id, mode=project.mode, requested_at=sent_at)


def overlap_hours() -> int:
    return int(callbacks.ROTATION_OVERLAP.total_seconds() // 3600)


def _with_secret(doc: dict[str, object], secret: str) -> web.Response:
    response = json_response(200, {**doc, "signing_secret": secret})
    return with_secret_redacted(response, {**orjson.loads(orjson.dumps(doc)), "signing_secret": None,
                                           "signing_secret_redacted": True})
