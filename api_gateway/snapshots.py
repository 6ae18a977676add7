"""Payload snapshots (DESIGN.md §7): encrypted here, before the payload reaches Kafka or PostgreSQL.

Without ``snapshots_enabled`` the payload is dropped at the door: only metadata is kept. The
associated data binds a snapshot to its project and reference, so a ciphertext copied onto another
flow does not open.
"""

from __future__ import annotations

from typing import Any

import orjson

from common.keyring import Envelope, Keyring
from store.projects import Project
from topics import Snapshot


def associated_data(project_id: str, reference: str) -> bytes:
    return f"snapshot:{project_id}:{reference}".encode()


def seal(keyring: Keyring, project: Project, reference: str,
         payload: dict[str, Any] | None) -> Snapshot | None:
    if payload is None or not project.snapshots_enabled:
        return None
    envelope = keyring.encrypt(orjson.dumps(payload), associated_data(project.id, reference))
    return Snapshot(key_id=envelope.key_id, nonce=envelope.nonce, ciphertext=envelope.ciphertext)


def open_snapshot(keyring: Keyring, project_id: str, reference: str, snapshot: Snapshot) -> dict[str, Any]:
    envelope = Envelope(snapshot.key_id, snapshot.nonce, snapshot.ciphertext)
    return orjson.loads(keyring.decrypt(envelope, associated_data(project_id, reference)))
