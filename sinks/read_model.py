"""The read-model sink: copies each flow transition from the audit topic into PostgreSQL."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from psycopg.errors import ForeignKeyViolation
from psycopg_pool import AsyncConnectionPool

from sinks.runner import Unprocessable
from store.flows import FlowView, upsert_flow
from topics import AuditEvent, decode
from topics.fields import parse_timestamp

NAME = "read-model"
FLOW_ACTION_PREFIX = "flow."


class ReadModelSink:
    def __init__(self, pool: AsyncConnectionPool):
        self._pool = pool

    async def handle(self, record: ConsumerRecord) -> None:
        event = decode(AuditEvent, record.value)
        if not event.action.startswith(FLOW_ACTION_PREFIX):
            return
        flow = flow_from_event(event)
        try:
            async with self._pool.connection() as conn:
                await upsert_flow(conn, flow)
        except ForeignKeyViolation:
            raise Unprocessable("unknown_project", f"{event.project_id} does not exist") from None


def flow_from_event(event: AuditEvent) -> FlowView:
    data = event.data
    try:
        return FlowView(
            project_id=event.project_id, reference=data["reference"], mode=data["mode"], status=data["status"],
            event_type=data["event_type"], effect_type=data["effect_type"],
            received_at=_time(data["received_at"]), deadline=_time(data["deadline"]),
            applied_at=None if data.get("applied_at") is None else _time(data["applied_at"]),
            incident_id=data.get("incident_id"), version=int(data["version"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unprocessable("invalid_flow_data", f"{event.action} event lacks a usable {exc}") from None


def _time(value: str):
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"timestamp {value!r}")
    return parsed
