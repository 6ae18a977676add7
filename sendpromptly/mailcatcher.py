"""A local SMTP catcher for the dev stack (``sendpromptly mailcatcher``): every message it receives
is kept as an ``.eml`` file in one folder, where a person reads it with ``sendpromptly mail list|show``
or at the catcher's web page. It accepts any sender, recipient and login and relays nothing: it is
for a laptop, never for production.

Files are numbered in arrival order (``000001.eml``, ...) and written whole before they appear
(written aside, then renamed), so a reader never sees half a message.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

DEFAULT_DIR = ".run/mail"
DIR_ENV = "SENDPROMPTLY_MAIL_DIR"
SUFFIX = ".eml"


@dataclass(frozen=True)
class Mail:
    number: int
    path: Path

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)  # noqa: S101 (the default policy makes EmailMessage objects)
        return parsed


def stored(folder: Path) -> list[Mail]:
    """The messages in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [Mail(int(p.stem), p) for p in folder.glob("*" + SUFFIX) if p.stem.isdigit()]
    return sorted(found, key=lambda m: m.number)


def find(folder: Path, number: int) -> Mail | None:
    return next((m for m in stored(folder) if m.number == number), None)


def summary(mail: Mail) -> list[str]:
    """Number, date, sender, recipients and subject: one row of ``mail list``."""
    message = mail.message()
    return [str(mail.number), str(message["Date"] or "-"), str(message["From"] or "-"),
            str(message["To"] or "-"), str(message["Subject"] or "-")]


def readable(mail: Mail) -> str:
    """The headers a person needs and the plain-text body (else the HTML one, as is)."""
    message = mail.message()
    headers = [f"{name}: {message[name]}" for name in ("Date", "From", "To", "Subject") if message[name]]
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    return "\n".join(headers) + "\n\n" + str(text).rstrip() + "\n"


class Keeper:
    """The SMTP handler: each message's DATA goes to the next numbered file."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        existing = stored(folder)
        self._next = existing[-1].number + 1 if existing else 1

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)  # noqa: S101 (decode_data is off)
        number, self._next = self._next, self._next + 1
        target = self.folder / f"{number:06d}{SUFFIX}"
        aside = target.with_suffix(".part")
        aside.write_bytes(content)
        os.replace(aside, target)
        return "250 Message kept"


def _accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: object) -> AuthResult:
    # The stack's SMTP URL may carry a login; a local catcher has nobody to keep out.
    return AuthResult(success=True)


def _web_app(folder: Path) -> web.Application:
    async def listing(request: web.Request) -> web.Response:
        rows = ["  ".join(summary(m)) for m in reversed(stored(folder))]
        return web.Response(text="\n".join(rows or ["no mail yet"]) + "\n")

    async def show(request: web.Request) -> web.Response:
        mail = find(folder, int(request.match_info["number"]))
        if mail is None:
            raise web.HTTPNotFound(text="no such message\n")
        return web.Response(text=readable(mail))

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_get("/", listing)
    app.router.add_get("/{number:[0-9]+}", show)
    app.router.add_get("/readyz", ready)
    return app


async def serve(folder: Path, host: str, smtp_port: int, web_port: int) -> None:
    """Until SIGTERM or SIGINT: SMTP on ``smtp_port``, the messages as text on ``web_port``."""
    keeper = Keeper(folder)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(keeper, authenticator=_accept_any_login, auth_require_tls=False), host, smtp_port)
    runner = web.AppRunner(_web_app(folder))
    await runner.setup()
    await web.TCPSite(runner, host, web_port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        smtp.close()
        await smtp.wait_closed()
        await runner.cleanup()
