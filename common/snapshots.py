"""Payload snapshots: sealed by the gateway, before the payload reaches Kafka or
PostgreSQL, and opened by the callbacks sink to send with a repair.

Without the project's ``snapshots_enabled`` the payload is dropped at the door: only metadata is
kept. The associated data binds a snapshot to its project and reference, so a ciphertext copied
onto another flow does not open.
"""

from __future__ import annotations

from typing import Any

import orjson

from common.keyring import Envelope, Keyring
from topics import Snapshot


def associated_data(project_id: str, reference: str) -> bytes:
    return f"snapshot:{project_id}:{reference}".encode()


def seal(keyring: Keyring, project_id: str, reference: str, payload: dict[str, Any] | None, *,
         enabled: bool) -> Snapshot | None:
    """The payload encrypted for its flow; None without one, or when the project keeps none."""
    if payload is None or not enabled:
        return None
    envelope = keyring.encrypt(orjson.dumps(payload), associated_data(project_id, reference))
    return Snapshot(key_id=envelope.key_id, nonce=envelope.nonce, ciphertext=envelope.ciphertext)


def open_snapshot(keyring: Keyring, project_id: str, reference: str, snapshot: Snapshot) -> dict[str, Any]:
    envelope = Envelope(snapshot.key_id, snapshot.nonce, snapshot.ciphertext)
    doc: dict[str, Any] = orjson.loads(keyring.decrypt(envelope, associated_data(project_id, reference)))
    return doc
