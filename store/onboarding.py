"""What the console's onboarding checklist reads: whether a project's test traffic has gone through
each step (a flow applied, an incident opened, an alert about it sent)."""

from __future__ import annotations

from dataclasses import dataclass

from store.db import Connection


@dataclass(frozen=True)
class TestTraffic:
    flow_applied: bool  # a test receipt and its result met
    incident_opened: bool  # a test flow failed or timed out
    alert_sent: bool  # and an alert about such an incident reached a destination


async def test_traffic(conn: Connection, project_id: str) -> TestTraffic:
    row = await (await conn.execute(
        "SELECT"
        " EXISTS (SELECT 1 FROM flows WHERE project_id = %(p)s AND mode = 'test' AND status = 'applied')"
        "   AS flow_applied,"
        " EXISTS (SELECT 1 FROM incidents WHERE project_id = %(p)s AND mode = 'test'"
        "   AND opened_at IS NOT NULL) AS incident_opened,"
        " EXISTS (SELECT 1 FROM notifications n JOIN incidents i ON i.id = n.incident_id"
        "   WHERE n.project_id = %(p)s AND i.mode = 'test' AND n.event_type = 'opened'"
        "   AND n.status = 'sent') AS alert_sent",
        {"p": project_id},
    )).fetchone()
    assert row is not None  # noqa: S101 (an aggregate without GROUP BY yields one row)
    return TestTraffic(**row)
