"""Email alerts through SMTP (``SENDPROMPTLY_SMTP_URL``): a plain-text and an HTML part.

``smtp://user:pass@host:port`` (add ``?starttls=1`` to upgrade with STARTTLS) or
``smtps://user:pass@host:port`` (TLS from the start). A 5xx answer is permanent (the address or
the relay refuses us); a 4xx, a timeout or a dropped connection is passing trouble. SMTP has no
idempotency key: a process that dies after the server accepted a message but before the send was
recorded sends it once more (see ``sinks/alert_delivery.py``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import aiosmtplib
from msgspec import Meta

from channels.kind import Kind, TargetRules
from channels.message import Alert, console_link, facts, subject
from channels.transport import SEND_TIMEOUT_SECONDS, TransportError
from common.config import Settings
from common.targets import _EMAIL_RE, check_email

# An address as ``check_email`` takes it (the operator invites' too).
EmailAddress = Annotated[str, Meta(extra_json_schema={
    "maxLength": 254, "pattern": f"^(?:{_EMAIL_RE.pattern})$"}, description="an email address")]


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """Raises ValueError naming what is wrong (``Settings`` checks it at start)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must look like smtp://user:pass@host:port or smtps://host:port")
        use_tls = parts.scheme == "smtps"
        start_tls = parse_qs(parts.query).get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
        return cls(
            host=parts.hostname, port=parts.port or (465 if use_tls else 25),
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
            use_tls=use_tls, start_tls=start_tls and not use_tls,
        )


def compose(alert: Alert, sender: str, recipient: str, console_url: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(alert)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="sendpromptly")
    link = console_link(alert, console_url)
    lines = [subject(alert), "", *(f"{label}: {value}" for label, value in facts(alert))]
    if link:
        lines += ["", f"Open the incident: {link}"]
    message.set_content("\n".join(lines) + "\n")
    rows = "".join(f"<tr><th align=\"left\">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
                   for label, value in facts(alert))
    button = f'<p><a href="{html.escape(link)}">Open the incident</a></p>' if link else ""
    message.add_alternative(
        f"<html><body><h2>{html.escape(subject(alert))}</h2><table>{rows}</table>{button}</body></html>",
        subtype="html")
    return message


class EmailChannel:
    def __init__(self, smtp_url: str, sender: str, console_url: str, timeout_seconds: float):
        self._server = SmtpServer.parse(smtp_url) if smtp_url else None
        self._sender = sender
        self._console_url = console_url
        self._timeout = timeout_seconds

    async def send(self, target: str, alert: Alert) -> None:
        server = self._server
        if server is None:
            raise TransportError("no SMTP server is configured (SENDPROMPTLY_SMTP_URL)", permanent=False)
        try:
            await aiosmtplib.send(
                compose(alert, self._sender, target, self._console_url), hostname=server.host,
                port=server.port, username=server.username, password=server.password,
                use_tls=server.use_tls, start_tls=server.start_tls, timeout=self._timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            refusals = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise TransportError(f"SMTP refused {target}: " + refusals,
                                 permanent=all(500 <= code < 600 for code in codes)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise TransportError(f"SMTP {exc.code}: {exc.message}", permanent=500 <= exc.code < 600) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransportError(f"SMTP: {type(exc).__name__}: {exc}", permanent=False) from None


async def _check_target(target: str, rules: TargetRules) -> str:
    return check_email(target)


def _open(settings: Settings, session: aiohttp.ClientSession) -> EmailChannel:
    return EmailChannel(settings.smtp_url, settings.smtp_from, settings.console_url, SEND_TIMEOUT_SECONDS)


KIND = Kind(name="email", label="Email", target_label="Email address", target=EmailAddress,
            check_target=_check_target, live_fault=lambda target: None, open=_open)
