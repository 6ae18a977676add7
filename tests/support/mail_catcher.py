"""The local stack's mail catcher as a real process (``sendpromptly mailcatcher``), for tests that
send alerts where ``make up`` sends them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from harness.processes import ManagedProcess, free_port
from sendpromptly.mailcatcher import stored


@dataclass(frozen=True)
class MailCatcher:
    folder: Path
    smtp_port: int
    web_port: int

    @property
    def url(self) -> str:
        # With a login, as a real relay would want: the catcher takes any.
        return f"smtp://alerts:secret@127.0.0.1:{self.smtp_port}"

    @property
    def messages(self) -> list[EmailMessage]:
        """What it kept, oldest first, read from its files as ``sendpromptly mail`` reads them."""
        return [mail.message() for mail in stored(self.folder)]

    def sendpromptly_mail(self, *args: str) -> str:
        """``sendpromptly mail ...`` on this catcher's folder; its output."""
        env = {**os.environ, "SENDPROMPTLY_MAIL_DIR": str(self.folder)}
        done = subprocess.run([sys.executable, "-m", "sendpromptly", "mail", *args], env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def mail_catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    catcher = MailCatcher(tmp_path / "mail", free_port(), free_port())
    args = ["mailcatcher", "--dir", str(catcher.folder), "--smtp-port", str(catcher.smtp_port),
            "--web-port", str(catcher.web_port)]
    process = ManagedProcess("mailcatcher", args, dict(os.environ), tmp_path / "mailcatcher.log")
    process.start()
    try:
        process.wait_ready(f"http://127.0.0.1:{catcher.web_port}/readyz", timeout=30)
        yield catcher
    finally:
        process.stop()
