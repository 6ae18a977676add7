"""Operators, their personal tokens and their project memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sendpromptly.ids import new_id
from store.db import Connection


@dataclass(frozen=True)
class Operator:
    id: str
    email: str
    is_admin: bool
    created_at: datetime
    project_ids: frozenset[str] = frozenset()

    def can_see(self, project_id: str) -> bool:
        return self.is_admin or project_id in self.project_ids


class EmailTaken(Exception):
    pass


async def create_operator(conn: Connection, *, email: str, is_admin: bool,
                          password_hash: str | None) -> Operator:
    existing = await (await conn.execute(
        "SELECT 1 FROM operators WHERE lower(email) = lower(%s)", (email,)
    )).fetchone()
    if existing:
        raise EmailTaken(email)
    row = await (await conn.execute(
        "INSERT INTO operators (id, email, is_admin, password_hash) VALUES (%s, %s, %s, %s)"
        " RETURNING id, email, is_admin, created_at",
        (new_id("opr"), email, is_admin, password_hash),
    )).fetchone()
    assert row is not None  # INSERT ... RETURNING yields the new row
    return Operator(**row)


async def add_member(conn: Connection, project_id: str, operator_id: str) -> None:
    await conn.execute(
        "INSERT INTO project_members (project_id, operator_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (project_id, operator_id),
    )


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


async def find_by_email(conn: Connection, email: str) -> Operator | None:
    row = await (await conn.execute(
        "SELECT id FROM operators WHERE lower(email) = lower(%s)", (email,)
    )).fetchone()
    return None if row is None else await get_operator(conn, row["id"])


async def get_operator(conn: Connection, operator_id: str) -> Operator | None:
    row = await (await conn.execute(
        "SELECT o.id, o.email, o.is_admin, o.created_at,"
        " coalesce(array_agg(m.project_id) FILTER (WHERE m.project_id IS NOT NULL), '{}') AS project_ids"
        " FROM operators o LEFT JOIN project_members m ON m.operator_id = o.id"
        " WHERE o.id = %s GROUP BY o.id",
        (operator_id,),
    )).fetchone()
    if row is None:
        return None
    return Operator(**{**row, "project_ids": frozenset(row["project_ids"])})


async def operator_for_token_hash(conn: Connection, token_hash: bytes) -> Operator | None:
    row = await (await conn.execute(
        "SELECT operator_id FROM operator_tokens WHERE token_hash = %s AND revoked_at IS NULL", (token_hash,)
    )).fetchone()
    return None if row is None else await get_operator(conn, row["operator_id"])
