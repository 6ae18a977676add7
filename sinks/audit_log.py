"""The audit sink (DESIGN.md §7): appends every event on ``sendpromptly.audit.v1`` (operator actions
from the gateway's outbox, flow transitions from the agents, callback attempts) to the
hash-chained ``audit_log``, once per event id.

The topic is keyed by project, so one project's events arrive in order on one partition and are
appended in that order; a redelivered event appends nothing.
"""

from __future__ import annotations

from aiokafka import ConsumerRecord
from psycopg.errors import DataError

from sendpromptly.config import Settings
from sinks.runner import Handler, Unprocessable
from store.audit_log import append
from store.db import Pool
from topics import AUDIT, AuditEvent, TopicSpec, decode

NAME = "audit"


class AuditLogSink:
    def __init__(self, pool: Pool):
        self._pool = pool

    async def handle(self, record: ConsumerRecord) -> None:
        event = decode(AuditEvent, record.value)
        try:
            async with self._pool.connection() as conn:
                await append(conn, event)
        except DataError as exc:  # e.g. a NUL character, which jsonb cannot hold: it never will
            raise Unprocessable("unstorable_audit_event", str(exc)) from None


def build(pool: Pool, settings: Settings) -> dict[TopicSpec, Handler]:
    return {AUDIT: AuditLogSink(pool).handle}
