"""Slack alerts through incoming webhooks: ``text`` (the notification and fallback) and ``blocks``
with the same facts and a button to the incident.

The webhook URL was checked when saved and is checked again here and when connecting (the
session's socket factory refuses non-public addresses, DNS rebinding included). Which answers are
worth retrying is the repair callbacks' rule (``common/callback_policy.py``): network errors, 408,
429 and 5xx; Slack's 404 (``no_service``) and 410 (``channel_is_archived``) and other 4xx are
permanent. Slack has no idempotency key either: a send cut off by a crash may post twice.
"""

from __future__ import annotations

from typing import Annotated, Any

import aiohttp
from msgspec import Meta

from channels.kind import Kind, TargetRules
from channels.message import Alert, console_link, facts, subject
from channels.transport import TransportError
from common.callback_policy import Verdict, verdict
from common.config import Settings
from common.targets import URL_SCHEMA, TargetError, check_url, check_url_syntax
from topics.fields import Mode

SlackWebhook = Annotated[str, Meta(extra_json_schema=URL_SCHEMA, description=(
    "a Slack incoming-webhook URL, by the repair callback's rules (https in live mode)"))]

# Slack shows at most 10 fields in a section, each of at most 2000 characters (a result's detail
# may be 2 KiB on its own).
MAX_FIELDS = 10
MAX_FIELD_CHARS = 2000


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _field(label: str, value: str) -> str:
    """``*label*`` and the escaped value, cut (never inside an escape) to Slack's field limit."""
    head = f"*{label}*\n"
    budget = MAX_FIELD_CHARS - len(head) - 1  # room for the ellipsis of a cut
    pieces: list[str] = []
    used = 0
    for char in value:
        piece = _escape(char)
        used += len(piece)
        if used > budget:
            return head + "".join(pieces) + "…"
        pieces.append(piece)
    return head + "".join(pieces)


def payload(alert: Alert, console_url: str) -> dict[str, Any]:
    link = console_link(alert, console_url)
    text = _escape(subject(alert)) + (f" <{link}|Open the incident>" if link else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": subject(alert)[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _field(label, value)}
                                       for label, value in facts(alert)[:MAX_FIELDS]]},
    ]
    if link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open the incident"}, "url": link}]})
    return {"text": text, "blocks": blocks}


class SlackChannel:
    def __init__(self, session: aiohttp.ClientSession, console_url: str):
        self._session = session
        self._console_url = console_url

    async def send(self, target: str, alert: Alert) -> None:
        try:
            # A test project may post to a local http catcher; live alerts go over https only.
            check_url_syntax(target, require_https=alert.mode == Mode.LIVE)
        except TargetError as exc:
            raise TransportError(f"the webhook URL {exc}", permanent=True) from None
        try:
            async with self._session.post(target, json=payload(alert, self._console_url),
                                          allow_redirects=False) as response:
                status, body = response.status, (await response.text())[:200]
        except TimeoutError:
            raise TransportError("Slack did not answer in time", permanent=False) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"Slack: {type(exc).__name__}: {exc}", permanent=False) from None
        match verdict(status):
            case Verdict.DELIVERED:
                return
            case Verdict.RETRY:
                raise TransportError(f"Slack answered HTTP {status}: {body}", permanent=False)
            case Verdict.FAIL:
                raise TransportError(f"Slack answered HTTP {status}: {body}", permanent=True)


async def _check_target(target: str, rules: TargetRules) -> str:
    """The callback's address rules; https in live mode (a test project may post to a local http
    catcher)."""
    return await check_url(target, require_https=rules.live, allow_private=rules.allow_private)


def _live_fault(target: str) -> str | None:
    try:
        check_url_syntax(target, require_https=True)
    except TargetError as exc:
        return str(exc)
    return None


def _open(settings: Settings, session: aiohttp.ClientSession) -> SlackChannel:
    return SlackChannel(session, settings.console_url)


KIND = Kind(name="slack", label="Slack webhook", target_label="Slack webhook URL", target=SlackWebhook,
            check_target=_check_target, live_fault=_live_fault, open=_open)
