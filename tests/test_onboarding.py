"""The seed's seven-step checklist (shared/seed), end to end through the public API against the
running processes: gateway, agents and every sink on real Kafka and PostgreSQL, the local stack's
own mail catcher (``sendpromptly mailcatcher``, as ``make up`` runs it) and the shipped example
repair receiver."""

from __future__ import annotations

from typing import Any

import pytest

from harness.processes import free_port
from harness.stack import SINK_NAMES, Stack
from tests.support.api import Api, eventually, flow_is
from tests.support.example_receiver import running_example_receiver
from tests.support.mail_catcher import MailCatcher

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(stack_factory, mail_catcher: MailCatcher) -> Stack:
    return stack_factory(sinks=SINK_NAMES, SENDPROMPTLY_SMTP_URL=mail_catcher.url)


async def test_the_seed_checklist_from_test_project_to_live(
        operator_api: Api, stack: Stack, mail_catcher: MailCatcher) -> None:
    # 1. Create the project in test mode.
    status, project, _ = await operator_api.send("POST", "/api/v1/projects", {"name": "Checkout"})
    assert status == 201 and project["mode"] == "test"
    base = f"/api/v1/projects/{project['id']}"

    rerun: list[dict[str, Any]] = []

    async def grant_access(callback: dict[str, Any]) -> None:
        rerun.append(callback)

    # 2. Set the repair callback URL: the app's endpoint, which will answer on this port.
    port = free_port()
    status, callback, _ = await operator_api.send("PUT", base + "/repair-callback",
                                                  {"url": f"http://127.0.0.1:{port}/repair"})
    assert status == 200

    # 3. Generate an API key for the integration.
    status, key, _ = await operator_api.send("POST", base + "/keys", {"label": "Production key"})
    assert status == 201
    app = Api(operator_api.session, stack.base_url, key["key"])

    async with running_example_receiver(secrets=[callback["signing_secret"]], sendpromptly_url=stack.base_url,
                                        api_key=key["key"], effect=grant_access, port=port):
        # 4. Add at least one alert destination.
        status, _, _ = await operator_api.send("POST", base + "/alert-destinations",
                                               {"type": "email", "target": "oncall@example.com"})
        assert status == 201

        # 5. Send a test acceptance signal and outcome signal.
        assert (await app.receipt("inv_ok"))[0] == 202
        assert (await app.result("inv_ok", "succeeded"))[0] == 202
        await eventually(lambda: app.flow("inv_ok"), flow_is("applied"))

        # 6. Force one failure to verify incident detection and the email alert.
        assert (await app.receipt("inv_broken"))[0] == 202
        assert (await app.result("inv_broken", "failed"))[0] == 202
        _, flow = await eventually(lambda: app.flow("inv_broken"), flow_is("incident"))
        incident_id = flow["incident_id"]
        mails = await eventually(lambda: _now(mail_catcher.messages), lambda found: len(found) >= 1,
                                 timeout=30)
        assert "inv_broken" in mails[0]["Subject"] and "[TEST]" in mails[0]["Subject"]
        assert mails[0]["To"] == "oncall@example.com"
        assert "inv_broken" in mail_catcher.sendpromptly_mail("show", "1")

        # Reprocess: the example receiver verifies the callback, reruns, reports success.
        await eventually(lambda: operator_api.get(f"/api/v1/incidents/{incident_id}"), lambda a: a[0] == 200)
        status, replay, _ = await operator_api.send("POST", f"/api/v1/incidents/{incident_id}/reprocess")
        assert status == 202
        incident = await eventually(lambda: operator_api.get(f"/api/v1/incidents/{incident_id}"),
                                    lambda a: a[1]["status"] == "resolved", timeout=30)
        assert incident[1]["resolution"] == "outcome_succeeded"
        assert [c["replay_id"] for c in rerun] == [replay["replay_id"]]
        await eventually(lambda: app.flow("inv_broken"), flow_is("resolved"))

    # 7. Switch to live once the handler and the repair path are proven (live needs https).
    status, _, _ = await operator_api.send("PUT", base + "/repair-callback",
                                           {"url": "https://127.0.0.1:9443/sendpromptly/repair"})
    assert status == 200
    status, live, _ = await operator_api.send("PATCH", base, {"mode": "live"})
    assert status == 200 and live["mode"] == "live"


async def _now(value: Any) -> Any:
    return value
