"""Creating operators directly in the database: the bootstrap path (``sendpromptly operator ...``),
for the first admin and for when no admin can log in."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sendpromptly import operator_tokens
from store import audit, operators
from store.db import open_pool
from store.projects import get_project

ACTOR = "cli:bootstrap"


class BootstrapError(Exception):
    """Nothing was changed; the message says why."""


@dataclass(frozen=True)
class CreatedOperator:
    id: str
    email: str
    is_admin: bool
    project_ids: list[str]
    token: str
    password: str


async def create_operator(database_url: str, *, email: str, is_admin: bool, project_ids: list[str],
                          password: str | None) -> CreatedOperator:
    if not is_admin and not project_ids:
        raise BootstrapError("a member needs at least one --project (or make the operator --admin)")
    password = password or secrets.token_urlsafe(18)
    token = operator_tokens.generate_token()
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            for project_id in project_ids:
                if await get_project(conn, project_id) is None:
                    raise BootstrapError(f"project {project_id} does not exist")
            try:
                created = await operators.create_operator(
                    conn, email=email, is_admin=is_admin,
                    password_hash=operator_tokens.hash_password(password))
            except operators.EmailTaken:
                raise BootstrapError(f"an operator with email {email} exists already") from None
            await operators.add_token(conn, created.id, operator_tokens.hash_token(token))
            for project_id in project_ids:
                await operators.add_member(conn, project_id, created.id)
            audit_scopes: Sequence[str | None] = project_ids or [None]  # None: the system chain
            for scope in audit_scopes:
                await audit.record(conn, project_id=scope, actor=ACTOR, action="operator.created",
                                   target=created.id, data={"email": email, "admin": is_admin})
    finally:
        await pool.close()
    return CreatedOperator(created.id, email, is_admin, project_ids, token, password)


async def revoke_tokens(database_url: str, email: str) -> int:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            operator = await operators.find_by_email(conn, email)
            if operator is None:
                raise BootstrapError(f"no operator with email {email}")
            count = await operators.revoke_tokens(conn, operator.id)
            audit_scopes: Sequence[str | None] = sorted(operator.project_ids) or [None]
            for scope in audit_scopes:
                await audit.record(conn, project_id=scope, actor=ACTOR, action="operator.tokens_revoked",
                                   target=operator.id, data={"email": email, "tokens": count})
    finally:
        await pool.close()
    return count
