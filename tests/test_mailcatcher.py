"""The local stack's mail catcher (issue #11, item 6): a real ``sendpromptly mailcatcher`` process
takes an alert from the alerts sink's own email channel, keeps it as a file, and ``sendpromptly mail
list|show`` (and its web page) read it back. No Kafka or PostgreSQL involved; the seed checklist's
step 6 runs against the same catcher in tests/test_onboarding.py."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from channels.email import EmailChannel
from channels.message import OPENED, Alert
from tests.support.mail_catcher import MailCatcher

ALERT = Alert(kind=OPENED, project_id="prj_1", project_name="Billing", mode="test",
              occurred_at="2026-01-01T00:00:00.000Z", incident_id="inc_1", reference="inv_42",
              reason="timeout")


async def test_an_alert_sent_through_the_email_channel_is_kept_and_read_back(
        mail_catcher: MailCatcher) -> None:
    assert "no mail" in mail_catcher.sendpromptly_mail("list")
    channel = EmailChannel(mail_catcher.url, "SendPromptly <alerts@sendpromptly.invalid>",
                           "http://127.0.0.1:8080", 10)
    await channel.send("ops@example.com", ALERT)
    await channel.send("oncall@example.com", ALERT)

    assert sorted(p.name for p in mail_catcher.folder.iterdir()) == ["000001.eml", "000002.eml"]
    listed = mail_catcher.sendpromptly_mail("list").splitlines()
    assert listed[0].split()[:2] == ["N", "DATE"]
    assert listed[1].startswith("2 ") and "oncall@example.com" in listed[1] and "inv_42" in listed[1]
    shown = mail_catcher.sendpromptly_mail("show", "1")
    assert "To: ops@example.com" in shown and "inv_42" in shown and "<html>" not in shown
    with urllib.request.urlopen(f"http://127.0.0.1:{mail_catcher.web_port}/", timeout=5) as page:
        assert "oncall@example.com" in page.read().decode()


def test_showing_a_message_that_is_not_there_says_where_to_look(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sendpromptly", "mail", "show", "7", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "mail list" in done.stderr
