"""One signed repair-callback request: where it goes and with which secrets, its Standard Webhooks
headers, and sending it. The callbacks sink sends repairs with it and the gateway sends the
operator's test callback with it, so a test is signed and sent exactly as a repair is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from common.callback_secrets import decrypt_secret
from common.keyring import Keyring
from common.receiver import sign
from common.targets import TargetError, check_url_syntax
from sinks.callback_policy import parse_retry_after
from store import callbacks
from store.callback_deliveries import Outcome
from store.db import Connection
from store.projects import Project


@dataclass(frozen=True)
class SigningTarget:
    url: str
    secrets: list[str]


async def signing_target(conn: Connection, project: Project, keyring: Keyring) -> SigningTarget | str:
    """The project's callback URL and the secrets that sign now, or why there is nothing to call.
    The URL was checked when saved; the rules may be stricter now (the project went live)."""
    if project.repair_callback_url is None:
        return "the project has no repair callback URL"
    try:
        check_url_syntax(project.repair_callback_url, require_https=project.mode == "live")
    except TargetError as exc:
        return f"the repair callback URL {exc}"
    stored = await callbacks.active_secrets(conn, project.id)
    if not stored:
        return "the project has no active signing secret"
    return SigningTarget(project.repair_callback_url,
                         [decrypt_secret(keyring, project.id, s.secret_enc) for s in stored])


def signed_headers(replay_id: str, timestamp: int, raw_body: bytes,
                   signing_secrets: list[str]) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "webhook-id": replay_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, replay_id, timestamp, raw_body)
                                      for secret in signing_secrets),
    }


async def post_signed(session: aiohttp.ClientSession, url: str, raw_body: bytes,
                      headers: dict[str, str]) -> tuple[Outcome, float | None]:
    """What came of one request, and the answer's ``Retry-After`` in seconds if any. Redirects are
    not followed: the receiver is the URL the operator saved, nowhere else."""
    http_status, retry_after, error = None, None, None
    started = time.monotonic()
    try:
        async with session.post(url, data=raw_body, headers=headers, allow_redirects=False) as response:
            http_status = response.status
            retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    except TimeoutError:
        error = f"no answer within {session.timeout.total:g} s"
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}"
    latency_ms = round((time.monotonic() - started) * 1000)
    return Outcome(http_status=http_status, latency_ms=latency_ms, error=error), retry_after
