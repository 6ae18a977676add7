"""One signed repair-callback request: where it goes and with which secrets, its Standard Webhooks
headers, and sending it. The callbacks sink sends repairs with it and the gateway sends the
operator's test callback with it, so a test is signed and sent exactly as a repair is."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from common.callback_policy import parse_retry_after
from common.callback_secrets import decrypt_secret
from common.keyring import Keyring
from common.receiver import sign
from common.targets import TargetError, check_url_syntax
from topics.fields import Mode


class CallbackProject(Protocol):
    """What signing needs of a project (``store.projects.Project`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def repair_callback_url(self) -> str | None: ...


class EncryptedSecret(Protocol):
    """A signing secret as stored (``store.callbacks.StoredSecret``)."""

    @property
    def secret_enc(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Outcome:
    """What came of an attempt; ``http_status`` None when no answer came."""

    http_status: int | None
    latency_ms: int | None
    error: str | None

    @property
    def problem(self) -> str | None:
        """What went wrong, if anything: the error, or the status of an answer other than 2xx."""
        if self.error is not None or self.http_status is None:
            return self.error
        return None if 200 <= self.http_status < 300 else f"HTTP {self.http_status}"


@dataclass(frozen=True)
class SigningTarget:
    url: str
    secrets: list[str]


def signing_target(project: CallbackProject, active_secrets: Sequence[EncryptedSecret],
                   keyring: Keyring) -> SigningTarget | str:
    """The project's callback URL and its ``active_secrets`` (``store.callbacks.active_secrets``)
    decrypted, or why there is nothing to call. The URL was checked when saved; the rules may be
    stricter now (the project went live)."""
    if project.repair_callback_url is None:
        return "the project has no repair callback URL"
    try:
        check_url_syntax(project.repair_callback_url, require_https=project.mode == Mode.LIVE)
    except TargetError as exc:
        return f"the repair callback URL {exc}"
    if not active_secrets:
        return "the project has no active signing secret"
    return SigningTarget(project.repair_callback_url,
                         [decrypt_secret(keyring, project.id, s.secret_enc) for s in active_secrets])


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
