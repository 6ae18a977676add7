"""Alert sends in PostgreSQL: a send is recorded as begun before it is made, a claimed notification
is leased away from other processes, and a send left without outcome is taken for interrupted once
its lease runs out, its late outcome then changing nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from store import notifications
from store.db import Connection, open_pool
from store.destinations import add_destination
from store.notifications import (
    INTERRUPTED,
    NotificationStatus,
    begin_attempt,
    claim_due,
    finish_attempt,
    list_attempts,
)
from tests.conftest import ProjectKey

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def test_a_send_left_without_outcome_is_interrupted_once_its_lease_runs_out(
        database_url: str, project: ProjectKey) -> None:
    pool = await open_pool(database_url, max_size=2)
    no_lease, lease = timedelta(0), timedelta(seconds=60)
    try:
        async with pool.connection() as conn, pool.connection() as other:
            await add_destination(conn, project.project_id, "email", "ops@example.com")
            assert await notifications.claim(conn, project_id=project.project_id, incident_id="inc_1",
                                             event_type="opened", alert={"kind": "opened"}) == 1
            (claimed,) = await claim_due(conn, limit=10, lease=no_lease)
            assert (claimed.attempts, claimed.interrupted) == (0, False)
            async with conn.transaction():
                assert await begin_attempt(conn, claimed.id, 1, NOW) is True
            assert await begin_attempt(other, claimed.id, 1, NOW) is False  # another process
            (under_way,) = await list_attempts(conn, [claimed.id])
            assert (under_way.number, under_way.error, under_way.finished_at) == (1, None, None)

            # The lease has run out: the next claim (with a lease now) says the send was cut off,
            # and nobody else gets the notification meanwhile.
            (claimed,) = await claim_due(conn, limit=10, lease=lease)
            assert (claimed.attempts, claimed.interrupted) == (1, True)
            assert await claim_due(other, limit=10, lease=lease) == []

            # The interruption and the first process's late answer race: exactly one is stored.
            async def finish(on: Connection, error: str | None) -> bool:
                async with on.transaction():
                    return await finish_attempt(on, claimed.id, 1, status=NotificationStatus.PENDING,
                                                next_attempt_at=NOW, error=error)

            won = await asyncio.gather(finish(conn, INTERRUPTED), finish(other, None))
            assert sorted(won) == [False, True]
            (first,) = await list_attempts(conn, [claimed.id])
            assert first.finished_at is not None and first.error == (INTERRUPTED if won[0] else None)

            (claimed,) = await claim_due(conn, limit=10, lease=lease)  # due at NOW
            assert (claimed.attempts, claimed.interrupted) == (1, False)
            async with conn.transaction():
                assert await begin_attempt(conn, claimed.id, 2, NOW) is True
                assert await finish_attempt(conn, claimed.id, 2, status=NotificationStatus.SENT,
                                            next_attempt_at=None, error=None) is True
            _, second = await list_attempts(conn, [claimed.id])
            assert (second.number, second.error) == (2, None) and second.finished_at is not None
            assert await claim_due(conn, limit=10, lease=no_lease) == []  # sent: nothing more
    finally:
        await pool.close()
