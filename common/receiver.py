"""Verify a SendPromptly repair callback on the receiving side.

Standard library only, so it can be copied into any Python app as one file. The signature scheme is
Standard Webhooks': ``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``,
several space-separated during a secret rotation. On top of the signature this checks that the
timestamp is recent and that the body's ``nonce`` was not seen before, so a captured request cannot
be played again.

    body = verify(await request.read(), request.headers, ["whsec_..."])
    rerun_effect(body["reference"], idempotency_key=body["replay_id"])

Give ``verify`` the raw bytes as received: re-serialised JSON does not verify.

Delivery is at least once, keyed by ``webhook-id`` (the replay id, ``replay_id`` in the body): the
same replay may arrive more than once, as a retry after an error or a timeout, or as a resend
after SendPromptly stopped during an attempt and cannot know whether it reached you. Each time it
comes with the next ``attempt`` number, a new ``nonce`` and a fresh timestamp and signature, so it
passes ``verify``: the nonce check refuses a captured request played again, not our own resend.
Apply the effect once per ``webhook-id``, and answer 2xx again to one you have already applied.

A test callback (the console's "Send test callback", ``sendpromptly callback test``) is signed the
same way; its body has ``"test": true``, ``type`` ``repair.test`` and a ``replay_id`` starting
``rpl_test_``, and names no flow: verify it, rerun nothing, answer 2xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix every signing secret shows, not a secret)
DEFAULT_TOLERANCE_SECONDS = 300


class VerificationError(ValueError):
    """The request is not a genuine, fresh, first-seen repair callback; ``str()`` says why."""


class NonceStore(Protocol):
    def add(self, nonce: str, ttl_seconds: float) -> bool:
        """Remember ``nonce`` for ``ttl_seconds``; False if it was already there.

        Must be atomic across the receiver's workers (e.g. Redis ``SET nonce 1 NX EX ttl``)."""
        ...


class InMemoryNonceStore:
    """Nonces of one process; enough for a single worker. Several workers need a shared store."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, nonce: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            self._expiry = {n: at for n, at in self._expiry.items() if at > now}
            if nonce in self._expiry:
                return False
            self._expiry[nonce] = now + ttl_seconds
            return True


# Shared by every call that brings no store of its own: one process, one memory of nonces.
_PROCESS_NONCES = InMemoryNonceStore()


def _secret_bytes(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("a signing secret is whsec_ followed by base64") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` as sent with ``message_id`` at ``timestamp``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: list[str], *, now: float | None = None,
           nonce_store: NonceStore = _PROCESS_NONCES,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> dict[str, Any]:
    """Check signature (any given secret against any signature sent), timestamp and nonce; return
    the parsed body, or raise ``VerificationError``."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id, timestamp_text, signatures = (lowered.get(name) for name in
                                              ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (message_id and timestamp_text and signatures):
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise VerificationError("webhook-timestamp is not whole unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise VerificationError(f"webhook-timestamp is more than {tolerance} s away from now "
                                "(stale or replayed)")

    sent = [sig.removeprefix("v1,").encode() for sig in signatures.split() if sig.startswith("v1,")]
    expected = [sign(secret, message_id, timestamp, raw_body).removeprefix("v1,").encode()
                for secret in secrets]
    # compare_digest on every pair: no early exit that would time which one matched.
    matches = [hmac.compare_digest(mine, theirs) for mine in expected for theirs in sent]
    if not any(matches):
        raise VerificationError("no signature matches the body with any of the given secrets")

    try:
        body = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VerificationError("the body is not JSON") from None
    nonce = body.get("nonce") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(nonce, str) or not nonce:
        raise VerificationError("the body carries no nonce")
    # Checked only after the signature, so forged requests cannot fill the store. A request is
    # refused anyway once its timestamp is out of tolerance (at most 2 x tolerance from now).
    if not nonce_store.add(nonce, 2 * tolerance):
        raise VerificationError("this nonce was seen before: a replayed request")
    return body
