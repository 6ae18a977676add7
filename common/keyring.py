"""AES-256-GCM with key ids: how recoverable secrets and payload snapshots are kept encrypted.

A keyring comes from one environment variable, ``kid:base64key[,kid:base64key...]``; the first key
encrypts, every listed key decrypts, so a rotation is: put the new key first, keep the old one
listed until nothing encrypted with it remains. Associated data binds a ciphertext to its owner
(a project, a reference), so a ciphertext moved to another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.config import ConfigError

NONCE_BYTES = 12


class DecryptionError(ValueError):
    """The ciphertext was altered, bound to other data, or made with a key this keyring lacks."""


@dataclass(frozen=True)
class Envelope:
    key_id: str
    nonce: str
    ciphertext: str

    def to_dict(self) -> dict[str, str]:
        return {"kid": self.key_id, "nonce": self.nonce, "ct": self.ciphertext}

    @classmethod
    def from_dict(cls, doc: dict[str, str]) -> Envelope:
        return cls(key_id=doc["kid"], nonce=doc["nonce"], ciphertext=doc["ct"])


class Keyring:
    def __init__(self, keys: dict[str, bytes], active: str):
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active

    @classmethod
    def parse(cls, variable: str, spec: str) -> Keyring:
        """Read ``kid:base64key,...``; errors name ``variable`` and say how to make a key."""
        how = ("make a key with:"
               " python3 -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'")
        if not spec.strip():
            raise ConfigError(f"{variable} is not set; give it as kid:base64key ({how})")
        keys: dict[str, bytes] = {}
        for item in spec.split(","):
            kid, sep, encoded = item.strip().partition(":")
            if not sep or not kid:
                raise ConfigError(f"{variable}: each key must be kid:base64key, got {item.strip()[:12]!r}...")
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise ConfigError(f"{variable}: key {kid!r} is not valid base64") from None
            if len(key) != 32:
                raise ConfigError(f"{variable}: key {kid!r} must be 32 bytes (AES-256), "
                                  f"got {len(key)}; {how}")
            keys[kid] = key
        return cls(keys, active=spec.split(",")[0].strip().partition(":")[0])

    @staticmethod
    def generate_spec(key_id: str) -> str:
        return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> Envelope:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active].encrypt(nonce, plaintext, associated_data)
        return Envelope(self.active, base64.b64encode(nonce).decode(), base64.b64encode(sealed).decode())

    def decrypt(self, envelope: Envelope, associated_data: bytes) -> bytes:
        cipher = self._ciphers.get(envelope.key_id)
        if cipher is None:
            raise DecryptionError(f"key {envelope.key_id!r} is not in the keyring "
                                  "(was it removed too early?)")
        try:
            return cipher.decrypt(base64.b64decode(envelope.nonce), base64.b64decode(envelope.ciphertext),
                                  associated_data)
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError("the ciphertext does not open with its key and associated data") from None
