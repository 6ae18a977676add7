"""A demo project, API key and operator token for the local stack (``sendpromptly demo``)."""

from __future__ import annotations

from dataclasses import dataclass

from sendpromptly import operator_tokens
from sendpromptly.apikeys import generate_api_key
from store import operators
from store.db import open_pool
from store.projects import Project, add_api_key, create_project, find_project_by_name

DEMO_OPERATOR_EMAIL = "demo@sendpromptly.local"


@dataclass(frozen=True)
class Demo:
    project: Project
    api_key: str
    operator_email: str
    operator_token: str


async def create_demo(database_url: str, name: str) -> Demo:
    """Reuses the project and operator of an earlier run; every run issues a fresh key and token,
    since neither is stored in a form that could be shown again."""
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            project = await find_project_by_name(conn, name) or await create_project(conn, name=name)
            key = generate_api_key()
            await add_api_key(conn, project.id, "Local demo key", key)
            operator = (await operators.find_by_email(conn, DEMO_OPERATOR_EMAIL)
                        or await operators.create_operator(conn, email=DEMO_OPERATOR_EMAIL, is_admin=True,
                                                           password_hash=None))
            token = operator_tokens.generate_token()
            await operators.add_token(conn, operator.id, operator_tokens.hash_token(token))
    finally:
        await pool.close()
    return Demo(project, key.plaintext, DEMO_OPERATOR_EMAIL, token)
