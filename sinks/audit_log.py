"""The audit sink: appends every event on ``sendpromptly.audit.v1`` (operator actions
from the gateway's outbox, flow transitions from the agents, callback attempts) to the
hash-chained ``audit_log``, once per event id.

The topic is keyed by project, so one project's events arrive in order on one partition and are
appended in that order, the records of one fetch in one transaction; a redelivered event appends
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord

from common.config import Settings
from sinks.contract import Batched, Sink, Unprocessable
from store.audit_log import append_many
from store.db import Pool
from store.errors import Unstorable
from topics import AUDIT, AuditEvent, decode


class AuditLogSink:
    def __init__(self, pool: Pool):
        self._pool = pool

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        events = [decode(AuditEvent, record.value) for record in records]
        try:
            async with self._pool.connection() as conn:
                await append_many(conn, events)
        except Unstorable as exc:  # e.g. a NUL character, which jsonb cannot hold: it never will
            raise Unprocessable("unstorable_audit_event", str(exc)) from None


def build(pool: Pool, settings: Settings) -> Sink:
    return Sink(handlers={AUDIT: Batched(AuditLogSink(pool).handle)})
