"""Alert channels: one module per kind of destination (``email``, ``slack``), each declaring its
``KIND`` (``channels/kind.py``) and one class with one ``send(target, alert)`` that raises
``TransportError``. ``KINDS`` is the one list of them, read by the gateway (bodies, OpenAPI,
console, test alerts), the CLI and the alerts sink. Adding a kind: its module here, and its line in
``KINDS``.

Below the sinks and the gateway, which both send through them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from channels import email, slack
from channels.kind import Kind, TargetRules
from channels.transport import SEND_TIMEOUT_SECONDS, Channel, TransportError
from common.config import Settings
from common.safe_http import outbound_session

__all__ = ["KINDS", "Channel", "Kind", "TargetRules", "TransportError", "open_channels"]

KINDS: dict[str, Kind] = {kind.name: kind for kind in (email.KIND, slack.KIND)}


@contextlib.asynccontextmanager
async def open_channels(settings: Settings) -> AsyncIterator[dict[str, Channel]]:
    """Every channel by destination type, sharing one SSRF-checked HTTP session."""
    async with outbound_session(allow_private=settings.allow_private_targets,
                                timeout_seconds=SEND_TIMEOUT_SECONDS) as session:
        yield {name: kind.open(settings, session) for name, kind in KINDS.items()}
