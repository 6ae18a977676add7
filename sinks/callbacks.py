"""The callbacks sink: repair callbacks, the snapshots they carry, and replay outcomes.

- ``sendpromptly.repairs.v1``: each repair request becomes one delivery in PostgreSQL (a
  redelivered request, none more); the offset is committed once it is stored, and the delivery
  loop (``sinks/callback_delivery.py``) makes the attempts, so pending retries survive a restart.
- ``sendpromptly.receipts.v1``: a receipt's encrypted snapshot is stored as it came, unopened,
  while its project has snapshots enabled; the agents never hold it. Purged after 30 days
  (``sinks/snapshot_purge.py``, hourly here).
- ``sendpromptly.results.v1``: a result that names a replay sets that replay's outcome; the
  agents resolve the incident on a ``succeeded`` one themselves.
"""

from __future__ import annotations

from functools import partial
from typing import TypeVar

from aiokafka import ConsumerRecord

from common.config import Settings
from sinks.callback_delivery import CallbackDeliverer
from sinks.contract import Handler, Loop, Sink, Unprocessable
from sinks.snapshot_purge import purge_hourly
from store import incidents
from store.callback_deliveries import record_delivery
from store.db import Pool
from store.errors import MissingReference
from store.projects import get_project
from store.snapshots import store_snapshot
from topics import RECEIPTS, REPAIRS, RESULTS, Receipt, RepairRequest, Result, SchemaError, TopicSpec, decode

M = TypeVar("M", Receipt, Result)


class CallbacksSink:
    def __init__(self, pool: Pool, deliverer: CallbackDeliverer):
        self._pool = pool
        self._deliverer = deliverer

    def handlers(self) -> dict[TopicSpec, Handler]:
        return {REPAIRS: self.handle_repair, RECEIPTS: self.handle_receipt, RESULTS: self.handle_result}

    async def handle_repair(self, record: ConsumerRecord) -> None:
        repair = decode(RepairRequest, record.value)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                # The replay's row before any attempt, so each attempt has a row to count on even
                # if the gateway's own write of it is still on its way.
                await incidents.add_replay(conn, repair.replay_id, repair.incident_id, repair.requested_by,
                                           repair.requested_at)
                await record_delivery(conn, repair)
        except MissingReference:
            raise Unprocessable(
                "unknown_incident", f"incident {repair.incident_id} of {repair.project_id} does not exist",
            ) from None
        self._deliverer.wake()

    async def handle_receipt(self, record: ConsumerRecord) -> None:
        receipt = _signal(Receipt, record)
        if receipt is None or receipt.snapshot is None:
            return
        async with self._pool.connection() as conn:
            project = await get_project(conn, receipt.project_id)
            # An unknown project's receipt is the agents' to dead-letter. A project that turned
            # snapshots off since the gateway sealed this one keeps only metadata from then on.
            if project is not None and project.snapshots_enabled:
                await store_snapshot(conn, receipt.project_id, receipt.reference, receipt.snapshot,
                                     receipt.received_at)

    async def handle_result(self, record: ConsumerRecord) -> None:
        result = _signal(Result, record)
        if result is None or result.replay_id is None:
            return
        async with self._pool.connection() as conn:
            await incidents.record_replay_outcome(conn, result.project_id, result.reference, result.replay_id,
                                                  incidents.ReplayOutcome(result.status))

def _signal(cls: type[M], record: ConsumerRecord) -> M | None:
    """A receipt or result, or None for one that is malformed: the agents validate the signal
    topics and dead-letter what they refuse, so one bad message makes one dead letter, not two."""
    try:
        return decode(cls, record.value)
    except SchemaError:
        return None


def build(pool: Pool, settings: Settings) -> Sink:
    deliverer = CallbackDeliverer(pool, settings)
    return Sink(handlers=CallbacksSink(pool, deliverer).handlers(),
                loops=(Loop("callback delivery", deliverer.run),
                       Loop("snapshot purge", partial(purge_hourly, pool))))
