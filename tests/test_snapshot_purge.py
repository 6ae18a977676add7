"""Snapshot purge: older than 30 days is gone, with an audit row per project."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sinks.snapshot_purge import purge_snapshots
from store.audit import list_for_project
from store.db import open_pool
from store.snapshots import get_snapshot, store_snapshot
from tests.conftest import ProjectKey
from topics import Snapshot

ENVELOPE = Snapshot(key_id="k1", nonce="bm9uY2U=", ciphertext="Y2lwaGVydGV4dA==")


async def test_snapshots_older_than_30_days_are_purged_and_audited(database_url: str,
                                                                   project: ProjectKey) -> None:
    now = datetime.now(UTC)
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            await store_snapshot(conn, project.project_id, "old", ENVELOPE, now - timedelta(days=31))
            await store_snapshot(conn, project.project_id, "recent", ENVELOPE, now - timedelta(days=29))
            # The first snapshot of a flow wins: a later receipt does not renew it.
            await store_snapshot(conn, project.project_id, "old", ENVELOPE, now)

        assert await purge_snapshots(pool, now=now) == {project.project_id: 1}
        assert await purge_snapshots(pool, now=now) == {}

        async with pool.connection() as conn:
            assert await get_snapshot(conn, project.project_id, "old") is None
            assert await get_snapshot(conn, project.project_id, "recent") == ENVELOPE
            (row,) = await list_for_project(conn, project.project_id, before_seq=None, limit=10)
        assert (row.action, row.target, row.data["count"]) == ("snapshots.purged", project.project_id, 1)
    finally:
        await pool.close()
