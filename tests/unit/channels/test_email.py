"""The email channel's message (subject, a text and an HTML part saying the same) and its
parsing of SENDPROMPTLY_SMTP_URL and of a destination's address."""

from __future__ import annotations

import pytest

from channels import TargetRules
from channels.email import KIND, SmtpServer, compose
from channels.message import OPENED, Alert
from common.targets import TargetError

ALERT = Alert(kind=OPENED, project_id="prj_1", project_name="Billing <EU>", mode="live",
              occurred_at="2026-01-01T00:00:00Z", incident_id="inc_1", reference="inv_1",
              reason="failed_outcome")
SUBJECT = "Incident opened: Billing <EU> (live), failed_outcome, reference inv_1"
LINK = "https://console.test/incidents/inc_1"


def test_the_message_has_the_subject_and_the_facts_in_text_and_escaped_html() -> None:
    message = compose(ALERT, "SendPromptly <alerts@example.com>", "oncall@example.com", "https://console.test")
    assert (message["Subject"], message["From"], message["To"]) == (
        SUBJECT, "SendPromptly <alerts@example.com>", "oncall@example.com")
    text_part, html_part = message.iter_parts()
    text = text_part.get_content()
    assert text.startswith(SUBJECT + "\n\n")
    assert "Project: Billing <EU> (prj_1)\n" in text and "Reference: inv_1\n" in text
    assert text.endswith(f"Open the incident: {LINK}\n")
    html = html_part.get_content()
    assert "<h2>Incident opened: Billing &lt;EU&gt; (live)" in html
    assert f'<a href="{LINK}">Open the incident</a>' in html


@pytest.mark.parametrize(("url", "server"), [
    ("smtp://relay.example", SmtpServer("relay.example", 25, None, None, use_tls=False, start_tls=False)),
    ("smtp://me%40x:p%2Fw@relay.example:587?starttls=1",
     SmtpServer("relay.example", 587, "me@x", "p/w", use_tls=False, start_tls=True)),
    ("smtps://relay.example?starttls=1",
     SmtpServer("relay.example", 465, None, None, use_tls=True, start_tls=False)),
])
def test_the_smtp_url_gives_host_port_credentials_and_tls(url: str, server: SmtpServer) -> None:
    assert SmtpServer.parse(url) == server


@pytest.mark.parametrize("url", ["http://relay.example", "smtp://", "relay.example:25"])
def test_an_smtp_url_that_is_not_one_says_what_it_must_look_like(url: str) -> None:
    with pytest.raises(ValueError, match="must look like smtp://"):
        SmtpServer.parse(url)


async def test_a_destination_is_an_email_address_in_either_mode() -> None:
    rules = TargetRules(live=True, allow_private=False)
    assert await KIND.check_target("oncall@example.com", rules) == "oncall@example.com"
    with pytest.raises(TargetError, match="email address"):
        await KIND.check_target("oncall@", rules)
    assert KIND.live_fault("oncall@example.com") is None
