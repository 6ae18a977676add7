"""What an alert says, whichever channel carries it: the facts, a subject line and the console link.

Channels lay these out their own way (an email's text and HTML parts, Slack blocks) but never
decide what is said, so an email and a Slack message about one event agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from common.console_paths import console_incident_url
from topics.fields import Mode

OPENED, RESOLVED, CALLBACK_EXHAUSTED, TEST = "opened", "resolved", "callback_exhausted", "test"

_HEADLINES = {
    OPENED: "Incident opened",
    RESOLVED: "Incident resolved",
    CALLBACK_EXHAUSTED: "Repair callback gave up",
    TEST: "Test alert",
}


@dataclass(frozen=True)
class Alert:
    kind: str
    project_id: str
    project_name: str
    mode: str
    occurred_at: str
    incident_id: str | None = None
    reference: str | None = None
    reason: str | None = None
    resolution: str | None = None
    replay_id: str | None = None
    # Why the repair callback gave up (its last error).
    error: str | None = None
    # What the app said of its failed result (bounded by the result schema; never a payload).
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Alert:
        return cls(**doc)


def subject(alert: Alert) -> str:
    """E.g. ``[TEST] Incident opened: Billing EU (test), failed_outcome, reference inv_42``."""
    parts = [f"{alert.project_name} ({alert.mode})"]
    if alert.reason:
        parts.append(alert.reason)
    if alert.reference:
        parts.append(f"reference {alert.reference}")
    marker = "[TEST] " if alert.mode == Mode.TEST else ""
    return f"{marker}{_HEADLINES[alert.kind]}: {', '.join(parts)}"


def facts(alert: Alert) -> list[tuple[str, str]]:
    """Label and value of everything known, in reading order."""
    values = [
        ("Project", f"{alert.project_name} ({alert.project_id})"), ("Mode", alert.mode),
        ("Reference", alert.reference), ("Reason", alert.reason), ("Detail", alert.detail),
        ("Resolution", alert.resolution),
        ("Replay", alert.replay_id), ("Last error", alert.error), ("Incident", alert.incident_id),
        ("When", alert.occurred_at),
    ]
    return [(label, value) for label, value in values if value]


def console_link(alert: Alert, console_url: str) -> str | None:
    if alert.incident_id is None:
        return None
    return console_incident_url(console_url, alert.incident_id)

