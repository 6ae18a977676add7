"""Creating operators directly in the database: the bootstrap path (``sendpromptly operator ...``),
for the first admin and for when no admin can log in."""

from __future__ import annotations

from dataclasses import dataclass

from api_gateway import control_plane
from store import operators
from store.db import open_pool

BOOTSTRAP = control_plane.Actor("cli:bootstrap")


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
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            invited = await control_plane.invite_operator(conn, BOOTSTRAP, email=email, is_admin=is_admin,
                                                          project_ids=project_ids, password=password)
    except control_plane.Refused as refused:
        raise BootstrapError(str(refused)) from None
    finally:
        await pool.close()
    return CreatedOperator(invited.operator.id, email, is_admin, project_ids, invited.token.token,
                           invited.password)


async def revoke_tokens(database_url: str, email: str) -> int:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            operator = await operators.find_by_email(conn, email)
            if operator is None:
                raise BootstrapError(f"no operator with email {email}")
            count = await operators.revoke_tokens(conn, operator.id)
            await BOOTSTRAP.record_for_operator(conn, operator, action="operator.tokens_revoked",
                                                data={"tokens": count})
    finally:
        await pool.close()
    return count
