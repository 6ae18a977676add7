"""Which pooled connections are checked on their way out: every one that has been idle, none that
came back within the last second (a busy pool would pay a round trip per checkout)."""

from __future__ import annotations

import asyncio
from typing import cast

from store.db import FRESH_SECONDS, Connection, ConnectionFreshness


class CountingConnection:
    """What the pool's check uses of a connection: autocommit, and an (empty) statement."""

    autocommit = True

    def __init__(self) -> None:
        self.checks = 0

    async def execute(self, query: str) -> None:
        assert query == ""
        self.checks += 1


def test_a_connection_is_checked_unless_it_came_back_within_a_second() -> None:
    now = [100.0]
    freshness = ConnectionFreshness(clock=lambda: now[0])
    fake = CountingConnection()
    conn = cast(Connection, fake)

    async def scenario() -> None:
        await freshness.check(conn)  # never returned yet: new, or from before this process knew it
        assert fake.checks == 1
        await freshness.returned(conn)
        now[0] += FRESH_SECONDS / 2
        await freshness.check(conn)  # busy: skipped
        assert fake.checks == 1
        now[0] += FRESH_SECONDS
        await freshness.check(conn)  # idle for longer: checked
        assert fake.checks == 2

    asyncio.run(scenario())
