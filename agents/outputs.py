"""Turn the state machine's effects into the messages the agents publish."""

from __future__ import annotations

from datetime import datetime

from agents.flow import (
    Effect,
    Flow,
    IncidentOpened,
    IncidentResolved,
    ReceiptRepeated,
    Transition,
    cycle_parts,
)
from common.ids import derived_id
from topics import AuditEvent, IncidentEvent
from topics.fields import format_timestamp
from topics.messages import FlowRecord, IncidentEventType

ACTOR = "agents"


def flow_data(flow: Flow) -> dict[str, object]:
    """The flow as the read model stores it (``FlowRecord``); carried in every transition's audit
    event."""
    return FlowRecord(
        reference=flow.reference, mode=flow.mode, status=flow.status, event_type=flow.event_type,
        effect_type=flow.effect_type, received_at=flow.received_at, deadline=flow.deadline,
        applied_at=flow.applied_at, incident_id=flow.incident_id, detail=flow.detail, version=flow.version,
        cycle=flow.cycle,
    ).data()


def to_message(effect: Effect) -> AuditEvent | IncidentEvent:
    flow = effect.flow
    if isinstance(effect, ReceiptRepeated):
        repeats = effect.repeats
        return AuditEvent(
            # The count names it: a replay repeats the id, and the read model keeps the greatest.
            event_id=derived_id("aud", *cycle_parts(flow), "receipts", str(repeats.count)),
            project_id=flow.project_id, actor=ACTOR, action="flow.receipt_repeated", target=flow.reference,
            occurred_at=effect.at,
            data={**flow_data(flow), "receipts": repeats.count,
                  "last_receipt_at": format_timestamp(repeats.last_received_at)},
        )
    if isinstance(effect, Transition):
        previous = None if effect.previous is None else effect.previous.value
        return AuditEvent(
            # The cycle and the flow's version name the transition, so a replay after a crash
            # repeats the id.
            event_id=derived_id("aud", *cycle_parts(flow), str(flow.version)),
            project_id=flow.project_id,
            actor=ACTOR,
            action=f"flow.{flow.status.value}",
            target=flow.reference,
            occurred_at=effect.at,
            data={**flow_data(flow), "previous_status": previous, "cause": effect.cause},
        )
    assert flow.incident_id is not None  # noqa: S101 (an incident effect comes from a flow whose incident is set)
    kind = IncidentEventType.OPENED if isinstance(effect, IncidentOpened) else IncidentEventType.RESOLVED
    # A corrected reason is an event of its own: it must not be dropped as a repeat of the first.
    corrected = isinstance(effect, IncidentOpened) and effect.corrected
    names = (kind, flow.incident_reason or "") if corrected else (kind,)
    return IncidentEvent(
        event_id=derived_id("ive", flow.incident_id, *names),
        type=kind,
        incident_id=flow.incident_id,
        project_id=flow.project_id,
        reference=flow.reference,
        mode=flow.mode,
        actor=ACTOR,
        occurred_at=effect.at,
        reason=flow.incident_reason if isinstance(effect, IncidentOpened) else None,
        resolution=flow.resolution if isinstance(effect, IncidentResolved) else None,
        deadline=flow.deadline,
        detail=flow.detail if isinstance(effect, IncidentOpened) else None,
    )


def forgotten_event(flow: Flow, at: datetime) -> AuditEvent:
    """The flow's state was forgotten after the retention: the read model drops its cycles up to
    this one (never a later cycle started after it)."""
    return AuditEvent(
        event_id=derived_id("aud", *cycle_parts(flow), "forgotten"),
        project_id=flow.project_id, actor=ACTOR, action="flow.forgotten", target=flow.reference,
        occurred_at=at,
        data={"reference": flow.reference, "mode": flow.mode, "cycle": flow.cycle,
              "received_at": format_timestamp(flow.received_at)},
    )
