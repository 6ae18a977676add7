"""Real peers for alerts on loopback: an SMTP server (aiosmtpd) that keeps every message, and a
Slack-like HTTPS webhook receiver (aiohttp, a self-signed certificate the stack trusts through
``SSL_CERT_FILE``) that answers from a script."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.processes import free_port
from tests.support.api import eventually

T = TypeVar("T")


@dataclass
class Mailbox:
    url: str
    messages: list[EmailMessage] = field(default_factory=list)
    # (code, text) to answer every RCPT with instead of accepting, e.g. (550, "no such user").
    refuse: tuple[int, str] | None = None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.refuse is not None:
            return f"{self.refuse[0]} {self.refuse[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes), "aiosmtpd hands DATA over as bytes (decode_data off)"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    port = free_port()
    mailbox = Mailbox(url=f"smtp://alerts:secret@127.0.0.1:{port}")
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=_authenticate)
    controller.start()
    yield mailbox
    controller.stop()


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: LoginPassword) -> AuthResult:
    """The credentials of ``Mailbox.url``: the sink must log in with what the URL says."""
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"alerts", b"secret"), handled=False)


@pytest.fixture(scope="session")
def loopback_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key); stacks trust it via SSL_CERT_FILE."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class SlackHook:
    """Records every POST by path as it arrives; answers each path from its script (statuses in
    turn), then 200. A path in ``held`` has its next POST held open (recorded, unanswered) until
    its event is set."""

    base_url: str
    scripts: dict[str, list[int]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    held: dict[str, asyncio.Event] = field(default_factory=dict)

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [body for got, body in self.received if got == path]


@pytest.fixture
async def slack(loopback_cert: tuple[Path, Path]) -> AsyncIterator[SlackHook]:
    port = free_port()
    hook = SlackHook(base_url=f"https://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.Response:
        hook.received.append((request.path, json.loads(await request.read())))
        if (release := hook.held.pop(request.path, None)) is not None:
            await release.wait()
        script = hook.scripts.get(request.path, [])
        status = script.pop(0) if script else 200
        return web.Response(status=status, text="ok" if status == 200 else "channel_is_archived")

    app = web.Application()
    app.router.add_post("/{path:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*loopback_cert)
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield hook
    await runner.cleanup()


async def mails(smtp: Mailbox, count: int) -> list[EmailMessage]:
    """Wait until the SMTP peer holds at least ``count`` messages; all it holds."""
    return await eventually(lambda: _now(list(smtp.messages)), lambda found: len(found) >= count)


async def posts(slack: SlackHook, path: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Wait until the webhook peer took at least ``count`` posts on ``path``; all it took there."""
    return await eventually(lambda: _now(slack.posts(path)), lambda found: len(found) >= count,
                            timeout=timeout)


async def _now(value: T) -> T:
    return value


def parts(message: EmailMessage) -> dict[str, str]:
    """A multipart message's parts by content type."""
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}
