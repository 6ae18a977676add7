"""Snapshot purge: ciphertext older than 30 days is deleted, and each project's
audit log says how many of its snapshots went. Hourly in the callbacks sink, and on demand with
``sendpromptly snapshots purge``; running it twice, or on two replicas, deletes nothing twice."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge

from store import audit
from store.db import Pool
from store.snapshots import delete_received_before

log = logging.getLogger(__name__)

RETENTION = timedelta(days=30)
INTERVAL_SECONDS = 3600.0
ACTOR = "system:snapshot-purge"

PURGED = Counter("sendpromptly_snapshots_purged_total", "Payload snapshots deleted 30 days after receipt")
LAST_PURGE = Gauge("sendpromptly_snapshot_purge_last_success_timestamp_seconds",
                   "When the hourly snapshot purge last completed (Unix seconds)")


async def purge_snapshots(pool: Pool, *, now: datetime | None = None) -> dict[str, int]:
    """Delete snapshots received more than 30 days before ``now``; returns how many per project."""
    cutoff = (now or datetime.now(UTC)) - RETENTION
    async with pool.connection() as conn, conn.transaction():
        purged = await delete_received_before(conn, cutoff)
        for project_id, count in purged.items():
            await audit.record(conn, project_id=project_id, actor=ACTOR, action="snapshots.purged",
                               target=project_id,
                               data={"count": count, "received_before": cutoff.isoformat()})
    return purged


async def purge_hourly(pool: Pool) -> None:
    """Until cancelled; a purge that fails is tried again an hour later."""
    while True:
        try:
            purged = await purge_snapshots(pool)
            PURGED.inc(sum(purged.values()))
            LAST_PURGE.set_to_current_time()
            if purged:
                log.info("purged %d snapshot(s) older than %s", sum(purged.values()), RETENTION)
        except Exception:
            log.exception("snapshot purge failed; trying again in an hour")
        await asyncio.sleep(INTERVAL_SECONDS)
