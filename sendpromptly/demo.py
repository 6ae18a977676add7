"""A demo project and API key for the local stack (``sendpromptly demo``)."""

from __future__ import annotations

from sendpromptly.apikeys import generate_api_key
from store.db import open_pool
from store.projects import Project, add_api_key, create_project, find_project_by_name


async def create_demo(database_url: str, name: str) -> tuple[Project, str]:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            project = await find_project_by_name(conn, name) or await create_project(conn, name=name)
            key = generate_api_key()
            await add_api_key(conn, project.id, "Local demo key", key)
    finally:
        await pool.close()
    return project, key.plaintext
