"""Operators' personal tokens (``op_...``) and console passwords (argon2id)."""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.ids import new_secret

TOKEN_PREFIX = "op"  # noqa: S105 (the prefix every token shows, not a token)
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def generate_token() -> str:
    return new_secret(TOKEN_PREFIX, 32)


def hash_token(token: str) -> bytes:
    # 256 random bits: a fast hash is enough and keeps per-request authentication cheap.
    return hashlib.sha256(token.encode()).digest()


def looks_like_token(token: str) -> bool:
    body = token.removeprefix(TOKEN_PREFIX + "_")
    return body != token and 20 <= len(body) <= 100 and body.isascii() and body.isalnum()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
