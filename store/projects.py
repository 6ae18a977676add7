"""Projects and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection

from sendpromptly.apikeys import NewApiKey
from sendpromptly.ids import new_id


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    mode: str
    timeout_minutes: int
    snapshots_enabled: bool
    repair_callback_url: str | None
    created_at: datetime


_PROJECT_COLUMNS = "id, name, mode, timeout_minutes, snapshots_enabled, repair_callback_url, created_at"


async def create_project(
    conn: AsyncConnection, *, name: str, mode: str = "test", timeout_minutes: int = 30,
    snapshots_enabled: bool = False,
) -> Project:
    row = await (await conn.execute(
        f"INSERT INTO projects (id, name, mode, timeout_minutes, snapshots_enabled)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_PROJECT_COLUMNS}",
        (new_id("prj"), name, mode, timeout_minutes, snapshots_enabled),
    )).fetchone()
    return Project(**row)


async def get_project(conn: AsyncConnection, project_id: str) -> Project | None:
    row = await (await conn.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = %s", (project_id,))).fetchone()
    return None if row is None else Project(**row)


async def find_project_by_name(conn: AsyncConnection, name: str) -> Project | None:
    row = await (await conn.execute(
        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE name = %s ORDER BY created_at LIMIT 1", (name,)
    )).fetchone()
    return None if row is None else Project(**row)


async def add_api_key(conn: AsyncConnection, project_id: str, label: str, key: NewApiKey) -> str:
    """Stores the key's hash and visible parts; returns the key's id (``key_...``)."""
    key_id = new_id("key")
    await conn.execute(
        "INSERT INTO api_keys (id, project_id, label, prefix, last_four, key_hash) VALUES (%s, %s, %s, %s, %s, %s)",
        (key_id, project_id, label, key.prefix, key.last_four, key.key_hash),
    )
    return key_id


async def project_for_key_hash(conn: AsyncConnection, key_hash: bytes) -> Project | None:
    """The project of a live (not revoked) key with this hash."""
    row = await (await conn.execute(
        f"SELECT {', '.join('p.' + c.strip() for c in _PROJECT_COLUMNS.split(','))}"
        " FROM api_keys k JOIN projects p ON p.id = k.project_id"
        " WHERE k.key_hash = %s AND k.revoked_at IS NULL",
        (key_hash,),
    )).fetchone()
    return None if row is None else Project(**row)
