"""Connections to PostgreSQL. SQL itself lives in the other modules of ``store``, one per table group."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias
from weakref import WeakKeyDictionary

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from store.errors import RowMissing, translated

Connection: TypeAlias = AsyncConnection[DictRow]
"""A connection from ``open_pool``: its rows are dicts keyed by column name."""


async def one_row(cursor: AsyncCursor[DictRow], what: str) -> DictRow:
    """The row of a statement that yields exactly one; ``RowMissing`` naming ``what`` (the row
    looked for: "project prj_...") when it yielded none."""
    row = await cursor.fetchone()
    if row is None:
        raise RowMissing(f"no row for {what}: it is not in the database (deleted meanwhile, or never there)")
    return row


class Pool:
    """The pool ``open_pool`` returns. Whatever fails on one of its connections leaves the
    ``connection()`` block as the store's error (``store.errors``), never psycopg's."""

    def __init__(self, pool: AsyncConnectionPool[Connection]):
        self._pool = pool

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Connection]:
        """A connection for the block, given back after it. Taking one fails with
        ``DatabaseUnavailable`` after ``timeout`` seconds, by default the pool's ``wait_seconds``
        (the database away, or every connection busy)."""
        with translated():
            async with self._pool.connection(timeout) as conn:
                yield conn

    @property
    def closed(self) -> bool:
        return self._pool.closed

    async def close(self) -> None:
        await self._pool.close()


async def open_pool(database_url: str, *, min_size: int = 1, max_size: int = 10,
                    wait_seconds: float = 30.0) -> Pool:
    """An open pool whose connections return rows as dicts; close it with ``await pool.close()``.
    Fails with ``DatabaseUnavailable`` when the database does not answer within 30 s."""
    freshness = ConnectionFreshness()
    pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        timeout=wait_seconds,
        kwargs={"row_factory": dict_row, "autocommit": True},
        check=freshness.check,
        reset=freshness.returned,
        open=False,
        name="sendpromptly",
    )
    with translated():
        await pool.open(wait=True, timeout=30)
    return Pool(pool)


# A connection given back this recently was working then: checking it would cost a round trip on
# every checkout of a busy pool (17 % of the gateway's peak, bench/RESULTS.md). The ones a restart
# leaves dead are mostly idle ones; a busy one that died fails its statement, which answers 503.
FRESH_SECONDS = 1.0


class ConnectionFreshness:
    """Checks a connection on its way out of the pool unless it came back within FRESH_SECONDS:
    one the server dropped (a restart, an idle timeout) stays in the pool looking fine until used,
    and checked, it is replaced instead of failing a request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._returned: WeakKeyDictionary[Connection, float] = WeakKeyDictionary()

    async def returned(self, conn: Connection) -> None:
        self._returned[conn] = self._clock()

    async def check(self, conn: Connection) -> None:
        returned = self._returned.get(conn)
        if returned is None or self._clock() - returned >= FRESH_SECONDS:
            await AsyncConnectionPool.check_connection(conn)
