"""The alerts sink: tells a project's alert destinations (email, Slack) when an
incident opens or resolves, and when a repair callback runs out of retries.

Consuming ``sendpromptly.incidents.v1`` only records what to send: one notification per
(incident, event, destination), claimed in PostgreSQL before anything is sent (a redelivered
event claims nothing new; a fetch's events in one transaction), and then the offset is committed.
The sender loop in the same process (``sinks/alert_delivery.py``) does the sending, recording each
send as an attempt before making it, so a restart or a second replica sends each alert once; only
a send cut off by a crash can go out twice (SMTP and Slack webhooks have no idempotency key), and
then both sends are on record, the first as interrupted: alerts are at least once.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord

from channels.message import Alert
from common.config import Settings
from sinks.alert_delivery import AlertSender
from sinks.contract import Batched, Loop, Sink
from store import notifications
from store.db import Pool
from topics import INCIDENTS, IncidentEvent, decode
from topics.fields import format_timestamp
from topics.messages import IncidentEventType

ALERTED_EVENTS = (IncidentEventType.OPENED, IncidentEventType.RESOLVED)


class AlertsSink:
    def __init__(self, pool: Pool, sender: AlertSender):
        self._pool = pool
        self._sender = sender

    async def handle_incidents(self, records: Sequence[ConsumerRecord]) -> None:
        """The notifications of a fetch's incident events, claimed in one transaction."""
        events = [event for event in (decode(IncidentEvent, record.value) for record in records)
                  if event.type in ALERTED_EVENTS]
        if not events:
            return
        claimed = 0
        async with self._pool.connection() as conn, conn.transaction():
            for event in events:
                found = await notifications.context(conn, event.project_id, event.incident_id)
                if found is None:  # an unknown project: the read model dead-letters the event
                    continue
                project_name, stored_reason = found
                alert = Alert(kind=event.type, project_id=event.project_id, project_name=project_name,
                              mode=event.mode, occurred_at=format_timestamp(event.occurred_at),
                              incident_id=event.incident_id, reference=event.reference,
                              reason=event.reason or stored_reason,
                              resolution=event.resolution, detail=event.detail)
                claimed += await notifications.claim(conn, project_id=event.project_id,
                                                     incident_id=event.incident_id, event_type=event.type,
                                                     alert=alert.to_dict())
        if claimed:
            self._sender.wake()


def build(pool: Pool, settings: Settings) -> Sink:
    sender = AlertSender(pool, settings)
    return Sink(handlers={INCIDENTS: Batched(AlertsSink(pool, sender).handle_incidents)},
                loops=(Loop("alert delivery", sender.run),))
