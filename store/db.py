"""Connections to PostgreSQL. SQL itself lives in the other modules of ``store``, one per table group."""

from __future__ import annotations

from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Connection: TypeAlias = AsyncConnection[DictRow]
"""A connection from ``open_pool``: its rows are dicts keyed by column name."""

Pool: TypeAlias = AsyncConnectionPool[Connection]
"""The pool ``open_pool`` returns; its connections are ``Connection``s."""


async def open_pool(database_url: str, *, min_size: int = 1, max_size: int = 10,
                    wait_seconds: float = 30.0) -> Pool:
    """An open pool whose connections return rows as dicts; close it with ``await pool.close()``.
    Taking a connection fails with ``PoolTimeout`` after ``wait_seconds`` (the database away, or
    every connection busy)."""
    pool: Pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        timeout=wait_seconds,
        kwargs={"row_factory": dict_row, "autocommit": True},
        # A connection the server dropped (a restart, an idle timeout) stays in the pool looking
        # fine until used; checked on the way out, it is replaced instead of failing a request.
        check=AsyncConnectionPool.check_connection,
        open=False,
        name="sendpromptly",
    )
    await pool.open(wait=True, timeout=30)
    return pool
