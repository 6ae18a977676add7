"""Operators, their personal tokens and their project memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.ids import new_id
from store.db import Connection, one_row
from store.errors import Duplicate


@dataclass(frozen=True)
class Operator:
    id: str
    email: str
    is_admin: bool
    created_at: datetime
    project_ids: frozenset[str] = frozenset()
    deactivated_at: datetime | None = None

    def can_see(self, project_id: str) -> bool:
        return self.is_admin or project_id in self.project_ids


@dataclass(frozen=True)
class TokenInfo:
    id: str
    operator_id: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class EmailTaken(Duplicate):
    """An operator with this email (in any case) exists already."""


async def create_operator(conn: Connection, *, email: str, is_admin: bool,
                          password_hash: str | None) -> Operator:
    existing = await (await conn.execute(
        "SELECT 1 FROM operators WHERE lower(email) = lower(%s)", (email,)
    )).fetchone()
    if existing:
        raise EmailTaken(email)
    operator_id = new_id("opr")
    return Operator(**await one_row(await conn.execute(
        "INSERT INTO operators (id, email, is_admin, password_hash) VALUES (%s, %s, %s, %s)"
        " RETURNING id, email, is_admin, created_at",
        (operator_id, email, is_admin, password_hash),
    ), f"the new operator {operator_id}"))


async def add_member(conn: Connection, project_id: str, operator_id: str) -> bool:
    """True when the operator was not a member before."""
    cursor = await conn.execute(
        "INSERT INTO project_members (project_id, operator_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (project_id, operator_id),
    )
    return cursor.rowcount == 1


async def remove_member(conn: Connection, project_id: str, operator_id: str) -> bool:
    """True when the operator was a member."""
    cursor = await conn.execute(
        "DELETE FROM project_members WHERE project_id = %s AND operator_id = %s", (project_id, operator_id)
    )
    return cursor.rowcount == 1


async def deactivate(conn: Connection, operator_id: str) -> bool:
    """True when the operator was active; their tokens are refused from then on."""
    cursor = await conn.execute(
        "UPDATE operators SET deactivated_at = now() WHERE id = %s AND deactivated_at IS NULL", (operator_id,)
    )
    return cursor.rowcount == 1


async def add_token(conn: Connection, operator_id: str, token_hash: bytes) -> str:
    token_id = new_id("tok")
    await conn.execute(
        "INSERT INTO operator_tokens (id, operator_id, token_hash) VALUES (%s, %s, %s)",
        (token_id, operator_id, token_hash),
    )
    return token_id


async def revoke_tokens(conn: Connection, operator_id: str) -> int:
    cursor = await conn.execute(
        "UPDATE operator_tokens SET revoked_at = now() WHERE operator_id = %s AND revoked_at IS NULL",
        (operator_id,),
    )
    return cursor.rowcount


_TOKEN_COLUMNS = "id, operator_id, created_at, last_used_at, revoked_at"  # noqa: S105 (column names)


async def get_token(conn: Connection, operator_id: str, token_id: str) -> TokenInfo | None:
    row = await (await conn.execute(
        f"SELECT {_TOKEN_COLUMNS} FROM operator_tokens WHERE id = %s AND operator_id = %s",
        (token_id, operator_id),
    )).fetchone()
    return None if row is None else TokenInfo(**row)


async def revoke_token(conn: Connection, operator_id: str, token_id: str) -> bool:
    """True when the token was live."""
    cursor = await conn.execute(
        "UPDATE operator_tokens SET revoked_at = now()"
        " WHERE id = %s AND operator_id = %s AND revoked_at IS NULL",
        (token_id, operator_id),
    )
    return cursor.rowcount == 1


async def find_by_email(conn: Connection, email: str) -> Operator | None:
    row = await (await conn.execute(
        "SELECT id FROM operators WHERE lower(email) = lower(%s)", (email,)
    )).fetchone()
    return None if row is None else await get_operator(conn, row["id"])


_OPERATOR_SELECT = (
    "SELECT o.id, o.email, o.is_admin, o.created_at, o.deactivated_at,"
    " coalesce(array_agg(m.project_id) FILTER (WHERE m.project_id IS NOT NULL), '{}') AS project_ids"
    " FROM operators o LEFT JOIN project_members m ON m.operator_id = o.id"
)


def _operator(row: dict[str, Any]) -> Operator:
    return Operator(**{**row, "project_ids": frozenset(row["project_ids"])})


async def get_operator(conn: Connection, operator_id: str) -> Operator | None:
    row = await (await conn.execute(
        _OPERATOR_SELECT + " WHERE o.id = %s GROUP BY o.id", (operator_id,)
    )).fetchone()
    return None if row is None else _operator(row)


async def list_operators(conn: Connection, *, before: tuple[datetime, str] | None,
                         limit: int) -> list[Operator]:
    """Every operator, deactivated ones too, newest first."""
    rows = await (await conn.execute(
        _OPERATOR_SELECT
        + " WHERE %(at)s::timestamptz IS NULL OR (o.created_at, o.id) < (%(at)s, %(id)s)"
        " GROUP BY o.id ORDER BY o.created_at DESC, o.id DESC LIMIT %(limit)s",
        {"at": before[0] if before else None, "id": before[1] if before else None, "limit": limit},
    )).fetchall()
    return [_operator(row) for row in rows]


async def operator_for_token_hash(conn: Connection, token_hash: bytes) -> Operator | None:
    row = await (await conn.execute(
        "SELECT t.operator_id FROM operator_tokens t JOIN operators o ON o.id = t.operator_id"
        " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND o.deactivated_at IS NULL", (token_hash,)
    )).fetchone()
    return None if row is None else await get_operator(conn, row["operator_id"])


async def password_hash_of(conn: Connection, operator_id: str) -> str | None:
    row = await (await conn.execute(
        "SELECT password_hash FROM operators WHERE id = %s AND deactivated_at IS NULL", (operator_id,)
    )).fetchone()
    return None if row is None else row["password_hash"]


async def set_password_hash(conn: Connection, operator_id: str, password_hash: str) -> None:
    await conn.execute("UPDATE operators SET password_hash = %s WHERE id = %s", (password_hash, operator_id))
