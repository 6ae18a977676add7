"""Connections to PostgreSQL. SQL itself lives in the other modules of ``store``, one per table group."""

from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


async def open_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    """An open pool whose connections return rows as dicts; close it with ``await pool.close()``."""
    pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        open=False,
        name="sendpromptly",
    )
    await pool.open(wait=True, timeout=30)
    return pool
