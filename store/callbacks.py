"""Signing secrets of repair callbacks, kept encrypted (they must be recoverable to sign)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from common.ids import new_id
from store.db import Connection

# During a rotation both signatures are sent for 24 h; a new URL's secret overlaps the same way.
ROTATION_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class StoredSecret:
    id: str
    project_id: str
    secret_enc: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None


async def replace_secret(conn: Connection, project_id: str, secret_enc: dict[str, Any]) -> str:
    """Store a new signing secret; the current ones keep signing for 24 h (``ROTATION_OVERLAP``),
    whether the secret was rotated or came with a new URL."""
    await conn.execute(
        "UPDATE callback_secrets SET retired_at = now() + %s"
        " WHERE project_id = %s AND (retired_at IS NULL OR retired_at > now() + %s)",
        (ROTATION_OVERLAP, project_id, ROTATION_OVERLAP),
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
