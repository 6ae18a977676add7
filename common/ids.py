"""Resource ids (``prj_``, ``key_``, ``inc_``, ``rpl_`` ...) and secrets (``sk_``).

Random ids use 128 bits; deterministic ids (incidents, audit events) hash their cause so a
replayed stream produces the same id again.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out)) or "0"


_ID_RE = re.compile(r"[a-z]{2,4}_[0-9A-Za-z]{1,32}")


def is_well_formed(prefix: str, value: str) -> bool:
    """Could ``value`` be an id of this kind? Lets callers answer 404 before querying for garbage."""
    return value.startswith(prefix + "_") and _ID_RE.fullmatch(value) is not None


def new_id(prefix: str) -> str:
    """A fresh random id, e.g. ``prj_3kTMd...``."""
    return f"{prefix}_{_base62(secrets.token_bytes(16))}"


def derived_id(prefix: str, *parts: str) -> str:
    """The same parts always give the same id; different parts practically never collide."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:16]
    return f"{prefix}_{_base62(digest)}"


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A secret token such as an API key ``sk_...`` with ``nbytes`` of randomness."""
    return f"{prefix}_{_base62(secrets.token_bytes(nbytes))}"
