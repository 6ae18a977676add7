"""Repair-callback signing secrets at rest: encrypted by the gateway when an operator sets or
rotates one, decrypted by the callbacks sink to sign with. Here, outside both, so that neither
process imports the other's code (nor registers its metrics)."""

from __future__ import annotations

from common.keyring import Envelope, Keyring


def _associated_data(project_id: str) -> bytes:
    return f"callback-secret:{project_id}".encode()


def encrypt_secret(keyring: Keyring, project_id: str, secret: str) -> dict[str, str]:
    return keyring.encrypt(secret.encode(), _associated_data(project_id)).to_dict()


def decrypt_secret(keyring: Keyring, project_id: str, secret_enc: dict[str, str]) -> str:
    """The ``whsec_`` secret again, for the callbacks sink to sign with."""
    return keyring.decrypt(Envelope.from_dict(secret_enc), _associated_data(project_id)).decode()
