"""Alert channels (DESIGN.md §1, §5): one module per kind of destination (``email``, ``slack``), each
one class with one ``send(target, alert)`` that raises ``TransportError``. ``open_channels`` is the
one place that lists them, for the alerts sink and the gateway's test alerts alike."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from common.config import Settings
from common.safe_http import outbound_session
from sinks.channels.email import EmailChannel
from sinks.channels.slack import SlackChannel
from sinks.channels.transport import Channel, TransportError

__all__ = ["Channel", "TransportError", "open_channels"]

# Per request; Slack answers within a second or two, an SMTP relay rarely takes longer.
SEND_TIMEOUT_SECONDS = 10.0


@contextlib.asynccontextmanager
async def open_channels(settings: Settings) -> AsyncIterator[dict[str, Channel]]:
    """Every channel by destination type, sharing one SSRF-checked HTTP session."""
    async with outbound_session(allow_private=settings.allow_private_targets,
                                timeout_seconds=SEND_TIMEOUT_SECONDS) as session:
        channels: list[Channel] = [
            EmailChannel(settings.smtp_url, settings.smtp_from, settings.console_url, SEND_TIMEOUT_SECONDS),
            SlackChannel(session, settings.console_url),
        ]
        yield {channel.kind: channel for channel in channels}
