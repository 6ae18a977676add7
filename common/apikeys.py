"""API keys (``sk_...``): how they are made and how they are looked up without being stored."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from common.ids import new_secret

KEY_PREFIX = "sk"
# What operators see to tell keys apart: "sk_" plus this many characters.
VISIBLE_PREFIX_CHARS = 8


@dataclass(frozen=True)
class NewApiKey:
    plaintext: str
    prefix: str
    last_four: str
    key_hash: bytes


def hash_api_key(plaintext: str) -> bytes:
    # A key carries 256 random bits, so a fast hash is as safe as a slow one and keeps the
    # per-request lookup cheap.
    return hashlib.sha256(plaintext.encode()).digest()


def generate_api_key() -> NewApiKey:
    plaintext = new_secret(KEY_PREFIX, 32)
    return NewApiKey(
        plaintext=plaintext,
        prefix=plaintext[: len(KEY_PREFIX) + 1 + VISIBLE_PREFIX_CHARS],
        last_four=plaintext[-4:],
        key_hash=hash_api_key(plaintext),
    )


def looks_like_api_key(token: str) -> bool:
    body = token.removeprefix(KEY_PREFIX + "_")
    return body != token and 20 <= len(body) <= 100 and body.isascii() and body.isalnum()
