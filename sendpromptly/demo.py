"""A demo project, API key and operator token for the local stack (``sendpromptly demo``), made
through the same audited actions as the operator API: all of it shows in the project's audit log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from api_gateway import control_plane
from store import operators
from store.db import Connection, open_pool
from store.projects import Project, find_project_by_name

DEMO_OPERATOR_EMAIL = "demo@sendpromptly.local"
DEMO = control_plane.Actor("cli:demo")


@dataclass(frozen=True)
class Demo:
    project: Project
    api_key: str
    operator_email: str
    operator_token: str
    operator_password: str  # for the console


async def create_demo(database_url: str, name: str) -> Demo:
    """Reuses the project and operator of an earlier run; every run issues a fresh key, token and
    console password, since none is stored in a form that could be shown again."""
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            project = (await find_project_by_name(conn, name)
                       or await control_plane.create_project(conn, DEMO, None, {"name": name}))
            _, key = await control_plane.create_api_key(conn, DEMO, project.id, "Local demo key")
            token, password = await _demo_operator_credentials(conn, project.id)
    finally:
        await pool.close()
    return Demo(project, key.plaintext, DEMO_OPERATOR_EMAIL, token, password)


async def _demo_operator_credentials(conn: Connection, project_id: str) -> tuple[str, str]:
    """A new token and console password of the demo admin, created (as a member of the project) on
    the first run."""
    operator = await operators.find_by_email(conn, DEMO_OPERATOR_EMAIL)
    if operator is None:
        invited = await control_plane.invite_operator(conn, DEMO, email=DEMO_OPERATOR_EMAIL, is_admin=True,
                                                      project_ids=[project_id])
        return invited.token.token, invited.password
    await control_plane.set_member(conn, DEMO, project_id, operator, member=True)
    password = secrets.token_urlsafe(18)
    await control_plane.set_password(conn, DEMO, operator, password)
    return (await control_plane.issue_token(conn, DEMO, operator)).token, password
