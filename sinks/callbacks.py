"""The callbacks sink (DESIGN.md §6, §7): repair callbacks, the snapshots they carry, and replay outcomes.

- ``sendpromptly.repairs.v1``: each repair request becomes one delivery in PostgreSQL (a
  redelivered request, none more); the offset is committed once it is stored, and the delivery
  loop (``sinks/callback_delivery.py``) makes the attempts, so pending retries survive a restart.
- ``sendpromptly.receipts.v1``: a receipt's encrypted snapshot is stored as it came, unopened;
  the agents never hold it. Purged after 30 days (``sinks/snapshot_purge.py``, hourly here).
- ``sendpromptly.results.v1``: a result that names a replay sets that replay's outcome; the
  agents resolve the incident on a ``succeeded`` one themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRecord
from psycopg import AsyncConnection
from psycopg.errors import ForeignKeyViolation
from psycopg_pool import AsyncConnectionPool

from sendpromptly.config import Settings
from sinks.callback_delivery import CallbackDeliverer
from sinks.runner import Handler, Unprocessable
from sinks.snapshot_purge import purge_hourly
from store import incidents
from store.callback_deliveries import record_delivery
from store.snapshots import store_snapshot
from topics import RECEIPTS, REPAIRS, RESULTS, Receipt, RepairRequest, Result, TopicSpec, decode

NAME = "callbacks"


class CallbacksSink:
    def __init__(self, pool: AsyncConnectionPool, deliverer: CallbackDeliverer):
        self._pool = pool
        self._deliverer = deliverer
        # The delivery loop and the hourly purge, referenced here (asyncio holds tasks weakly).
        self.background: list[asyncio.Task[None]] = []

    def handlers(self) -> dict[TopicSpec, Handler]:
        return {REPAIRS: self.handle_repair, RECEIPTS: self.handle_receipt, RESULTS: self.handle_result}

    async def handle_repair(self, record: ConsumerRecord) -> None:
        repair = decode(RepairRequest, record.value)

        async def write(conn: AsyncConnection) -> None:
            async with conn.transaction():
                # The replay's row before any attempt, so each attempt has a row to count on even
                # if the gateway's own write of it is still on its way.
                await incidents.add_replay(conn, repair.replay_id, repair.incident_id, repair.requested_by,
                                           repair.requested_at)
                await record_delivery(conn, repair)

        await self._write(f"incident {repair.incident_id} of {repair.project_id}", write)
        self._deliverer.wake()

    async def handle_receipt(self, record: ConsumerRecord) -> None:
        receipt = decode(Receipt, record.value)
        if receipt.snapshot is None:
            return
        snapshot = receipt.snapshot
        await self._write(f"project {receipt.project_id}", lambda conn: store_snapshot(
            conn, receipt.project_id, receipt.reference, snapshot, receipt.received_at))

    async def handle_result(self, record: ConsumerRecord) -> None:
        result = decode(Result, record.value)
        if result.replay_id is None:
            return
        await self._write(f"project {result.project_id}", lambda conn: incidents.record_replay_outcome(
            conn, result.project_id, result.reference, result.replay_id, result.status))

    async def _write(self, what: str, write: Callable[[AsyncConnection], Awaitable[object]]) -> None:
        try:
            async with self._pool.connection() as conn:
                await write(conn)
        except ForeignKeyViolation:
            raise Unprocessable("unknown_reference", f"{what} does not exist") from None


def build(pool: AsyncConnectionPool, settings: Settings) -> dict[TopicSpec, Handler]:
    deliverer = CallbackDeliverer(pool, settings)
    sink = CallbacksSink(pool, deliverer)
    # They run beside the consumer in this process and stop once the sink process closes its pool.
    sink.background = [asyncio.get_running_loop().create_task(job) for job in (deliverer.run(), purge_hourly(pool))]
    return sink.handlers()
