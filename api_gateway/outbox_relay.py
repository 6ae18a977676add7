"""Publishes the audit outbox to ``sendpromptly.audit.v1``: the second half of the transactional
outbox. Runs in every gateway replica; ``FOR UPDATE SKIP LOCKED`` keeps replicas off each other's
rows, and a row is marked published only after Kafka acknowledged it (at-least-once; event ids
let the audit sink drop a repeat)."""

from __future__ import annotations

import asyncio
import logging

from api_gateway.publisher import Publisher, PublishUnavailable
from store import audit
from store.audit import AuditRow
from store.db import Pool
from topics import AUDIT, AuditEvent, encode, project_key

log = logging.getLogger(__name__)

BATCH = 200
IDLE_SECONDS = 0.25
ERROR_BACKOFF_SECONDS = 2.0


def to_event(row: AuditRow) -> AuditEvent:
    return AuditEvent(event_id=row.event_id, project_id=row.project_id, actor=row.actor, action=row.action,
                      target=row.target, occurred_at=row.occurred_at, data=row.data,
                      source_address=row.source_address)


async def relay_once(pool: Pool, publisher: Publisher, topic_prefix: str) -> int:
    async with pool.connection() as conn, conn.transaction():
        rows = await audit.claim_unpublished(conn, BATCH)
        if rows:
            await asyncio.gather(*(
                publisher.publish(AUDIT.name(topic_prefix), project_key(row.project_id),
                                  encode(to_event(row)))
                for row in rows
            ))
            await audit.mark_published(conn, [row.seq for row in rows])
    return len(rows)


async def run_relay(pool: Pool, publisher: Publisher, topic_prefix: str) -> None:
    while True:
        try:
            if await relay_once(pool, publisher, topic_prefix) < BATCH:
                await asyncio.sleep(IDLE_SECONDS)
        except asyncio.CancelledError:
            raise
        except (PublishUnavailable, OSError) as exc:
            log.warning("audit outbox relay: %s; retrying in %.0fs", exc, ERROR_BACKOFF_SECONDS)
            await asyncio.sleep(ERROR_BACKOFF_SECONDS)
        except Exception:
            log.exception("audit outbox relay failed; retrying in %.0fs", ERROR_BACKOFF_SECONDS)
            await asyncio.sleep(ERROR_BACKOFF_SECONDS)
