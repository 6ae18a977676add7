"""What every alert channel shares: the one error a send can end in, and the shape of a channel."""

from __future__ import annotations

from typing import Protocol

from channels.message import Alert

# Per request; Slack answers within a second or two, an SMTP relay rarely takes longer.
SEND_TIMEOUT_SECONDS = 10.0


class TransportError(Exception):
    """A send failed. ``permanent``: asking again will not help (Slack 404/410, SMTP 5xx); it is
    recorded on the destination for operators. Otherwise the send is retried with backoff."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Channel(Protocol):
    async def send(self, target: str, alert: Alert) -> None:
        """Deliver ``alert`` to ``target`` (an address, a webhook URL) or raise ``TransportError``."""
