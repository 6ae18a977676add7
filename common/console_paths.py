"""Paths of console pages that other processes link to: an alert links to its incident's page, which
the gateway serves. One spelling, so a link cannot point where no page is."""

from __future__ import annotations

CONSOLE_INCIDENT = "/incidents/{incident_id}"


def console_incident_url(console_url: str, incident_id: str) -> str:
    """The incident's page under the console's public URL (``SENDPROMPTLY_CONSOLE_URL``)."""
    return console_url.rstrip("/") + CONSOLE_INCIDENT.format(incident_id=incident_id)
