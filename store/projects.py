"""Projects and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.apikeys import NewApiKey
from common.ids import new_id
from store.db import Connection, one_row
from topics.fields import Mode


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    mode: Mode
    timeout_minutes: int
    snapshots_enabled: bool
    repair_callback_url: str | None
    created_at: datetime


_PROJECT_COLUMNS = "id, name, mode, timeout_minutes, snapshots_enabled, repair_callback_url, created_at"


def _project(row: dict[str, Any]) -> Project:
    return Project(**{**row, "mode": Mode(row["mode"])})


async def create_project(
    conn: Connection, *, name: str, mode: Mode = Mode.TEST, timeout_minutes: int = 30,
    snapshots_enabled: bool = False,
) -> Project:
    project_id = new_id("prj")
    return _project(await one_row(await conn.execute(
        f"INSERT INTO projects (id, name, mode, timeout_minutes, snapshots_enabled)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_PROJECT_COLUMNS}",
        (project_id, name, mode, timeout_minutes, snapshots_enabled),
    ), f"the new project {project_id}"))


async def get_project(conn: Connection, project_id: str) -> Project | None:
    row = await (await conn.execute(
        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = %s", (project_id,)
    )).fetchone()
    return None if row is None else _project(row)


async def lock_project(conn: Connection, project_id: str) -> Project | None:
    """The project, its row locked until the transaction ends: changes that must keep live mode's
    prerequisites (keys, destinations, callback) and the switch to live take turns, so two of them
    at once cannot each leave the other's last one."""
    row = await (await conn.execute(
        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = %s FOR UPDATE", (project_id,)
    )).fetchone()
    return None if row is None else _project(row)


async def find_project_by_name(conn: Connection, name: str) -> Project | None:
    row = await (await conn.execute(
        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE name = %s ORDER BY created_at LIMIT 1", (name,)
    )).fetchone()
    return None if row is None else _project(row)


async def add_api_key(conn: Connection, project_id: str, label: str, key: NewApiKey) -> str:
    """Stores the key's hash and visible parts; returns the key's id (``key_...``)."""
    key_id = new_id("key")
    await conn.execute(
        "INSERT INTO api_keys (id, project_id, label, prefix, last_four, key_hash)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (key_id, project_id, label, key.prefix, key.last_four, key.key_hash),
    )
    return key_id


async def project_for_key_hash(conn: Connection, key_hash: bytes) -> Project | None:
    """The project of a live (not revoked) key with this hash."""
    row = await (await conn.execute(
        f"SELECT {', '.join('p.' + c.strip() for c in _PROJECT_COLUMNS.split(','))}"
        " FROM api_keys k JOIN projects p ON p.id = k.project_id"
        " WHERE k.key_hash = %s AND k.revoked_at IS NULL",
        (key_hash,),
    )).fetchone()
    return None if row is None else _project(row)


async def list_projects(conn: Connection, *, operator_id: str | None, before: tuple[datetime, str] | None,
                        limit: int) -> list[Project]:
    """Newest first. ``operator_id`` None lists all projects (admins); else only that member's."""
    cols = ", ".join("p." + c.strip() for c in _PROJECT_COLUMNS.split(","))
    rows = await (await conn.execute(
        f"SELECT {cols} FROM projects p"
        " WHERE (%(op)s::text IS NULL OR EXISTS ("
        "   SELECT 1 FROM project_members m WHERE m.project_id = p.id AND m.operator_id = %(op)s))"
        " AND (%(at)s::timestamptz IS NULL OR (p.created_at, p.id) < (%(at)s, %(id)s))"
        " ORDER BY p.created_at DESC, p.id DESC LIMIT %(limit)s",
        {"op": operator_id, "at": before[0] if before else None, "id": before[1] if before else None,
         "limit": limit},
    )).fetchall()
    return [_project(row) for row in rows]


UPDATABLE_FIELDS = ("name", "mode", "timeout_minutes", "snapshots_enabled", "repair_callback_url")


async def update_project(conn: Connection, project_id: str, changes: dict[str, object]) -> Project:
    """The project with ``changes`` made (none: as it is). Projects are never deleted, so one the
    caller has read is there: ``RowMissing`` otherwise."""
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    statement = (f"UPDATE projects SET {assignments} WHERE id = %(id)s RETURNING {_PROJECT_COLUMNS}"
                 if changes else f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = %(id)s")
    return _project(await one_row(await conn.execute(statement, {**changes, "id": project_id}),
                                  f"project {project_id}"))


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    project_id: str
    label: str
    prefix: str
    last_four: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_KEY_COLUMNS = "id, project_id, label, prefix, last_four, created_at, last_used_at, revoked_at"


async def get_api_key(conn: Connection, project_id: str, key_id: str) -> ApiKeyInfo | None:
    row = await (await conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE project_id = %s AND id = %s", (project_id, key_id)
    )).fetchone()
    return None if row is None else ApiKeyInfo(**row)


async def list_api_keys(conn: Connection, project_id: str, *, before: tuple[datetime, str] | None,
                        limit: int) -> list[ApiKeyInfo]:
    """Newest first (by created_at, then id), live and revoked, from after ``before``."""
    rows = await (await conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE project_id = %(project)s"
        " AND (%(at)s::timestamptz IS NULL OR (created_at, id) < (%(at)s, %(id)s))"
        " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
        {"project": project_id, "at": before[0] if before else None, "id": before[1] if before else None,
         "limit": limit},
    )).fetchall()
    return [ApiKeyInfo(**row) for row in rows]


async def revoke_api_key(conn: Connection, project_id: str, key_id: str) -> ApiKeyInfo | None:
    """Revoke; revoking a revoked key keeps its first revocation time."""
    row = await (await conn.execute(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE project_id = %s AND id = %s"
        f" RETURNING {_KEY_COLUMNS}",
        (project_id, key_id),
    )).fetchone()
    return None if row is None else ApiKeyInfo(**row)


async def touch_api_keys(conn: Connection, last_used: dict[bytes, datetime]) -> None:
    """Record when keys were last used, in one statement for many keys (batched by the gateway)."""
    if last_used:
        await conn.execute(
            "UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, u.at)"
            " FROM unnest(%s::bytea[], %s::timestamptz[]) AS u(hash, at) WHERE k.key_hash = u.hash",
            (list(last_used), list(last_used.values())),
        )


async def count_live_keys(conn: Connection, project_id: str) -> int:
    row = await one_row(await conn.execute(
        "SELECT count(*) AS n FROM api_keys WHERE project_id = %s AND revoked_at IS NULL", (project_id,)
    ), f"the count of project {project_id}'s live keys")
    live: int = row["n"]
    return live
