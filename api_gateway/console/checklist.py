"""The onboarding checklist of a test-mode project: the product page's seven steps, each ticked
from the project's real data, with the next step's action one click away."""

from __future__ import annotations

from dataclasses import dataclass

from store import destinations, onboarding, projects
from store.db import Connection
from store.projects import Project
from topics.fields import Mode

KEY_PLACEHOLDER = "sk_YOUR_KEY"


@dataclass(frozen=True)
class Step:
    title: str
    done: bool
    # Where the step is done, and what to do there; ``commands`` are curl lines to run.
    link: str
    hint: str
    commands: tuple[str, ...] = ()


def _curl(base_url: str, path: str, body: str) -> str:
    return (f"curl -X POST {base_url}/api/v1/{path} -H 'Authorization: Bearer {KEY_PLACEHOLDER}' "
            f"-H \"Idempotency-Key: $(uuidgen)\" -H 'Content-Type: application/json' -d '{body}'")


async def onboarding_steps(conn: Connection, project: Project, base_url: str) -> list[Step]:
    page = f"/projects/{project.id}"
    traffic = await onboarding.test_traffic(conn, project.id)
    has_key = await projects.count_live_keys(conn, project.id) > 0
    has_destination = bool(await destinations.list_destinations(conn, project.id, limit=1))
    failed = '{"reference":"test_2","status":"failed","detail":"forced failure"}'
    receipt = '{"reference":"%s","event_type":"invoice.paid","effect_type":"grant_access"}'
    return [
        Step("Create the project in test mode", True, page, "Done: test mode takes http:// targets."),
        Step("Set the repair callback", project.repair_callback_url is not None, f"{page}/callback",
             "The URL SendPromptly calls to rerun a missing effect."),
        Step("Generate an API key", has_key, f"{page}/keys",
             "Your app sends signals with it."),
        Step("Add an alert destination", has_destination, f"{page}/alerts",
             "An email address or a Slack webhook to tell when a flow breaks."),
        Step("Send a test receipt and result", traffic.flow_applied, f"{page}/flows",
             f"Replace {KEY_PLACEHOLDER} with your key and run:",
             (_curl(base_url, "receipt", receipt % "test_1"),
              _curl(base_url, "result", '{"reference":"test_1","status":"succeeded"}'))),
        Step("Force one failure: see the incident and the alert",
             traffic.incident_opened and traffic.alert_sent, f"{page}/incidents",
             "A failed result opens an incident at once and alerts your destinations:",
             (_curl(base_url, "receipt", receipt % "test_2"),
              _curl(base_url, "result", failed))),
        Step("Switch to live", project.mode == Mode.LIVE, f"{page}#mode",
             "Once the steps above are done, with an https callback."),
    ]
