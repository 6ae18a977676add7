"""The receiver helper: genuine, fresh, first-seen callbacks pass; anything else is refused with a reason.
Cross-checked against the ``standardwebhooks`` package, which receivers may use instead."""

from __future__ import annotations

import ast
import base64
import json
import os
import sys
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from common import receiver
from common.callback_request import signed_headers
from common.receiver import InMemoryNonceStore, VerificationError, verify

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
OTHER = "whsec_" + base64.b64encode(os.urandom(32)).decode()
NOW = 1_700_000_000


def request(*, secrets: list[str] | None = None, nonce: str = "n-1",
            at: int = NOW) -> tuple[bytes, dict[str, str]]:
    """A signed callback; ``secrets`` defaults to ``[SECRET]``."""
    body = json.dumps({"type": "repair.requested", "replay_id": "rpl_1", "nonce": nonce}).encode()
    return body, signed_headers("rpl_1", at, body, [SECRET] if secrets is None else secrets)


def check(body: bytes, headers: dict[str, str], secrets: list[str] | None = None, **kwargs) -> dict:
    """``verify`` with ``secrets`` defaulting to ``[SECRET]``."""
    return verify(body, headers, [SECRET] if secrets is None else secrets, now=kwargs.pop("now", NOW),
                  nonce_store=kwargs.pop("nonce_store", InMemoryNonceStore()), **kwargs)


def test_a_genuine_request_passes_and_returns_the_body() -> None:
    body, headers = request()
    assert check(body, headers)["replay_id"] == "rpl_1"
    # Header names are case-insensitive, as HTTP's are.
    assert check(body, {k.upper(): v for k, v in headers.items()})["nonce"] == "n-1"


@pytest.mark.parametrize(("tamper", "reason"), [
    (lambda b, h: (b.replace(b"rpl_1", b"rpl_2"), h), "no signature matches"),
    (lambda b, h: (b, {**h, "webhook-id": "rpl_2"}), "no signature matches"),
    (lambda b, h: (b, {**h, "webhook-timestamp": str(NOW - 1)}), "no signature matches"),
    (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}), "missing"),
    (lambda b, h: (b, {**h, "webhook-timestamp": "soon"}), "whole unix seconds"),
])
def test_a_tampered_request_is_refused(tamper, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        check(*tamper(*request()))


def test_a_stale_or_future_timestamp_is_refused() -> None:
    for at in (NOW - 301, NOW + 301):
        with pytest.raises(VerificationError, match="300 s away"):
            check(*request(at=at))
    assert check(*request(at=NOW - 300))


def test_a_replayed_nonce_is_refused() -> None:
    store = InMemoryNonceStore()
    body, headers = request()
    check(body, headers, nonce_store=store)
    with pytest.raises(VerificationError, match="seen before"):
        check(body, headers, nonce_store=store)
    # Our own retry has a new nonce (and timestamp) and passes.
    assert check(*request(nonce="n-2", at=NOW + 5), nonce_store=store, now=NOW + 5)


def test_a_wrong_secret_is_refused_and_a_forgery_does_not_use_up_the_nonce() -> None:
    store = InMemoryNonceStore()
    forged = request(secrets=[OTHER])
    with pytest.raises(VerificationError, match="no signature matches"):
        check(*forged, nonce_store=store)
    assert check(*request(), nonce_store=store)


def test_during_a_rotation_either_secret_verifies() -> None:
    body, headers = request(secrets=[OTHER, SECRET])
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert check(body, headers, [SECRET])
    assert check(body, headers, [OTHER])
    assert check(body, headers, [SECRET, OTHER])


def test_signatures_verify_with_the_standardwebhooks_package() -> None:
    body, headers = request(secrets=[SECRET, OTHER], at=int(time.time()))
    for secret in (SECRET, OTHER):
        assert Webhook(secret).verify(body, headers)["replay_id"] == "rpl_1"


def test_the_helper_is_one_file_of_the_standard_library_only() -> None:
    # Receivers copy the one file into their apps (docs/repair-callbacks.md): it may import
    # nothing of ours and nothing to install.
    tree = ast.parse(Path(receiver.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
