"""What the console's onboarding checklist reads: whether a project's test traffic has gone through
each step (a flow applied, an incident opened, an alert about it sent)."""

from __future__ import annotations

from dataclasses import dataclass

from store.db import Connection, one_row
from store.notifications import NotificationStatus
from topics.fields import Mode
from topics.messages import FlowStatus, IncidentEventType


@dataclass(frozen=True)
class TestTraffic:
    flow_applied: bool  # a test receipt and its result met
    incident_opened: bool  # a test flow failed or timed out
    alert_sent: bool  # and an alert about such an incident reached a destination


async def test_traffic(conn: Connection, project_id: str) -> TestTraffic:
    row = await one_row(await conn.execute(
        "SELECT"
        " EXISTS (SELECT 1 FROM flows WHERE project_id = %(p)s AND mode = %(test)s AND status = %(applied)s)"
        "   AS flow_applied,"
        " EXISTS (SELECT 1 FROM incidents WHERE project_id = %(p)s AND mode = %(test)s"
        "   AND opened_at IS NOT NULL) AS incident_opened,"
        " EXISTS (SELECT 1 FROM notifications n JOIN incidents i ON i.id = n.incident_id"
        "   WHERE n.project_id = %(p)s AND i.mode = %(test)s AND n.event_type = %(opened)s"
        "   AND n.status = %(sent)s) AS alert_sent",
        {"p": project_id, "test": Mode.TEST, "applied": FlowStatus.APPLIED,
         "opened": IncidentEventType.OPENED, "sent": NotificationStatus.SENT},
    ), f"project {project_id}'s test traffic")
    return TestTraffic(**row)
