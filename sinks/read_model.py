"""The read-model sink: copies each flow transition (and repeated receipt, and forgotten cycle) from
the audit topic, and each incident event from the incidents topic, into PostgreSQL. What one fetch
brings goes in one transaction; its flows in one statement unless a forgotten cycle comes between
them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord

from common.config import Settings
from sinks.contract import Batched, Sink, Unprocessable
from store.db import Connection, Pool
from store.errors import MissingReference
from store.flows import FlowView, forget_flows, upsert_flows
from store.incidents import apply_events
from topics import AUDIT, INCIDENTS, AuditEvent, IncidentEvent, TopicSpec, decode
from topics.fields import FieldErrors, parse_timestamp
from topics.messages import FlowRecord, IncidentEventType

FLOW_ACTION_PREFIX = "flow."
# Besides the transitions (flow.<status>), the agents tell of a receipt recorded on an open cycle
# (the flow as it stands, receipts grown) and of closed cycles they forgot after the retention.
RECEIPT_REPEATED = "flow.receipt_repeated"
FORGOTTEN = "flow.forgotten"
# What each kind of incident event must carry for the read model to use it; the schema leaves
# these optional because they belong to one kind each.
REQUIRED_BY_TYPE = {
    IncidentEventType.OPENED: ("reason", "deadline"),
    IncidentEventType.RESOLVED: ("resolution",),
    IncidentEventType.REPROCESS_REQUESTED: ("replay_id",),
}


class ReadModelSink:
    def __init__(self, pool: Pool):
        self._pool = pool

    def handlers(self) -> dict[TopicSpec, Batched]:
        return {AUDIT: Batched(self.handle_audit), INCIDENTS: Batched(self.handle_incidents)}

    async def handle_audit(self, records: Sequence[ConsumerRecord]) -> None:
        """The flows these records tell of, merged in order; the forgotten cycles deleted where
        they come between them."""
        writes: list[FlowView | Forgotten] = []
        for record in records:
            event = decode(AuditEvent, record.value)
            if event.action == FORGOTTEN:
                writes.append(Forgotten(*forgotten_from_event(event)))
            elif event.action.startswith(FLOW_ACTION_PREFIX):
                # A transition or a repeated receipt: both carry the flow as it stands, merged alike.
                writes.append(flow_from_event(event))
        if writes:
            await self._write(writes[0].project_id, lambda conn: _apply(conn, writes))

    async def handle_incidents(self, records: Sequence[ConsumerRecord]) -> None:
        events = [decode(IncidentEvent, record.value) for record in records]
        for event in events:
            missing = [name for name in REQUIRED_BY_TYPE.get(event.type, ()) if getattr(event, name) is None]
            if missing:
                raise Unprocessable("invalid_incident_event",
                                    f"an {event.type!r} event needs {', '.join(missing)}")
        await self._write(events[0].project_id, lambda conn: apply_events(conn, events))

    async def _write(self, project_id: str | None,
                     write: Callable[[Connection], Awaitable[object]]) -> None:
        try:
            async with self._pool.connection() as conn:
                await write(conn)
        except MissingReference:
            # Alone, a record names its project; a batch that fails is handled again record by record.
            raise Unprocessable("unknown_project", f"{project_id} does not exist") from None


@dataclass(frozen=True)
class Forgotten:
    """The cycles of a reference the agents forgot (``flow.forgotten``)."""

    project_id: str
    mode: str
    reference: str
    cycle: int
    received_at: datetime


async def _apply(conn: Connection, writes: Sequence[FlowView | Forgotten]) -> None:
    """The flows merged and the cycles forgotten, in order, in one transaction: in as few
    statements as the forgotten cycles between the flows allow."""
    flows: list[FlowView] = []
    async with conn.transaction():
        for write in writes:
            if isinstance(write, FlowView):
                flows.append(write)
                continue
            await upsert_flows(conn, flows)
            flows = []
            await forget_flows(conn, write.project_id, write.mode, write.reference, cycle=write.cycle,
                               received_at=write.received_at)
        await upsert_flows(conn, flows)


def flow_from_event(event: AuditEvent) -> FlowView:
    """The flow a transition or a repeated receipt carries. Events written before flow cycles
    lack cycle, receipts and last_receipt_at: their flow is cycle 1 with its one receipt."""
    project_id = _project_of(event)
    data = event.data
    try:
        flow = FlowRecord.from_data(data)
        last_receipt_at = data.get("last_receipt_at")
        return FlowView(
            project_id=project_id, mode=flow.mode, reference=flow.reference, cycle=flow.cycle,
            receipts=_count(data, "receipts"),
            last_receipt_at=flow.received_at if last_receipt_at is None else _time(last_receipt_at),
            status=flow.status, event_type=flow.event_type, effect_type=flow.effect_type,
            received_at=flow.received_at, deadline=flow.deadline, applied_at=flow.applied_at,
            incident_id=flow.incident_id, detail=flow.detail, version=flow.version,
        )
    except FieldErrors as exc:
        raise Unprocessable("invalid_flow_data", f"{event.action} event's flow: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise Unprocessable("invalid_flow_data", f"{event.action} event lacks a usable {exc}") from None


def forgotten_from_event(event: AuditEvent) -> tuple[str, str, str, int, datetime]:
    """(project_id, mode, reference, cycle, received_at of that cycle) of a flow.forgotten event."""
    project_id = _project_of(event)
    data = event.data
    try:
        if "cycle" not in data:  # the default of old transitions must not widen a deletion
            raise KeyError("cycle")
        return (project_id, data["mode"], data["reference"], _count(data, "cycle"),
                _time(data["received_at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise Unprocessable("invalid_flow_data", f"{event.action} event lacks a usable {exc}") from None


def _project_of(event: AuditEvent) -> str:
    if event.project_id is None:  # the schema allows it for system events; a flow has a project
        raise Unprocessable("invalid_flow_data", f"{event.action} event has no project_id")
    return event.project_id


def _count(data: dict[str, Any], name: str) -> int:
    """A cycle number or a count of receipts: a whole number from 1; absent (older events) is 1."""
    value = data.get(name, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} {value!r}")
    return value


def _time(value: str) -> datetime:
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"timestamp {value!r}")
    return parsed


def build(pool: Pool, settings: Settings) -> Sink:
    return Sink(handlers=ReadModelSink(pool).handlers())
