"""What an operator does through the API, each asserted to succeed: the steps many tests take on the
way to what they check."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api, eventually

# Loopback is allowed on the test stack. Nothing listens on port 9: the callbacks sink's attempts
# fail and are retried, which the tests using it do not look at (tests/test_repair_callbacks.py does).
CALLBACK = "http://127.0.0.1:9/repair"
HTTPS_CALLBACK = "https://127.0.0.1:9/repair"  # live mode needs https


async def new_project(api: Api, name: str = "Billing") -> dict[str, Any]:
    status, project, _ = await api.send("POST", "/api/v1/projects", {"name": name})
    assert status == 201, project
    return project


async def set_callback(operator_api: Api, project_id: str, url: str = CALLBACK) -> str:
    """Set the project's repair callback; its signing secret."""
    status, answer, _ = await operator_api.send("PUT", f"/api/v1/projects/{project_id}/repair-callback",
                                                {"url": url})
    assert status == 200, answer
    return answer["signing_secret"]


async def add_destination(operator_api: Api, project_id: str, type_: str, target: str) -> dict[str, Any]:
    status, created, _ = await operator_api.send("POST", f"/api/v1/projects/{project_id}/alert-destinations",
                                                 {"type": type_, "target": target})
    assert status == 201, created
    return created


async def open_incident(api: Api, reference: str) -> dict[str, Any]:
    """A receipt and a failed result: the agents open an incident; the flow shows it."""
    assert (await api.receipt(reference))[0] == 202
    assert (await api.result(reference, "failed", detail="card declined"))[0] == 202
    _, flow = await eventually(lambda: api.flow(reference), lambda answer: "incident" in answer[1])
    # The flow shows only the incident its own state names, never one beside a `pending` status.
    assert flow["status"] == "incident" and flow["incident_id"] == flow["incident"]["id"]
    return flow["incident"]


def incident_path(incident_id: str, action: str = "") -> str:
    return f"/api/v1/incidents/{incident_id}" + (f"/{action}" if action else "")


async def reprocess(operator_api: Api, incident_id: str) -> str:
    """Ask for a repair of the incident; its replay id."""
    status, answer, _ = await operator_api.send("POST", incident_path(incident_id, "reprocess"))
    assert status == 202, answer
    return answer["replay_id"]
