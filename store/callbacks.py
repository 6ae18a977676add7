"""Signing secrets of repair callbacks, kept encrypted (they must be recoverable to sign)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from sendpromptly.ids import new_id
from store.db import Connection

# DESIGN.md §6: during a rotation both signatures are sent for 24 h.
ROTATION_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class StoredSecret:
    id: str
    project_id: str
    secret_enc: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None


async def replace_secret(conn: Connection, project_id: str, secret_enc: dict[str, Any], *,
                         overlap: bool) -> str:
    """Store a new signing secret. With ``overlap`` the current ones keep signing for 24 h
    (rotation); without, they stop at once (a new URL gets a fresh secret of its own)."""
    retire_after = ROTATION_OVERLAP if overlap else timedelta(0)
    await conn.execute(
        "UPDATE callback_secrets SET retired_at = now() + %s"
        " WHERE project_id = %s AND (retired_at IS NULL OR retired_at > now() + %s)",
        (retire_after, project_id, retire_after),
    )
    secret_id = new_id("sec")
    await conn.execute(
        "INSERT INTO callback_secrets (id, project_id, secret_enc) VALUES (%s, %s, %s)",
        (secret_id, project_id, Jsonb(secret_enc)),
    )
    return secret_id


async def active_secrets(conn: Connection, project_id: str) -> list[StoredSecret]:
    """Secrets that sign now, newest first."""
    rows = await (await conn.execute(
        "SELECT id, project_id, secret_enc, created_at, retired_at FROM callback_secrets"
        " WHERE project_id = %s AND (retired_at IS NULL OR retired_at > now()) ORDER BY created_at DESC",
        (project_id,),
    )).fetchall()
    return [StoredSecret(**row) for row in rows]
