"""``sendpromptly incidents ...`` end to end: the real CLI, as a subprocess, against a real stack."""

from __future__ import annotations

import re

import pytest

from harness.stack import Stack
from tests.support.api import Api, eventually
from tests.support.cli import Cli, Operator, api_get
from tests.support.operator_actions import CALLBACK, open_incident

pytestmark = pytest.mark.e2e


async def test_an_incident_from_list_to_resolution(
        cli: Cli, api: Api, stack: Stack, admin: Operator) -> None:
    incident = await open_incident(api, "inv_cli")
    incident_id, project_id = incident["id"], incident["project_id"]
    cli.ok("callback", "set", project_id, CALLBACK)

    assert cli.json("incidents", "list", project_id) == api_get(
        stack, admin, f"/api/v1/projects/{project_id}/incidents?limit=200")
    table = cli.ok("incidents", "list", project_id, "--status", "open").out.splitlines()
    assert table[0].split() == ["ID", "REFERENCE", "REASON", "STATUS", "OPENED", "ACKNOWLEDGED", "REPLAYS"]
    assert table[1].split() == [incident_id, "inv_cli", "failed_outcome", "open", incident["opened_at"], "-",
                                "0"]
    assert cli.ok("incidents", "list", project_id, "--status", "resolved").out == "no incidents\n"
    # Every filter reaches the API (which refuses one it does not know): none is dropped on the way.
    filtered = cli.json("incidents", "list", project_id, "--mode", "test", "--reason", "failed_outcome",
                        "--reference", "inv_cli")
    assert [i["id"] for i in filtered["items"]] == [incident_id]
    assert cli.ok("incidents", "list", project_id, "--mode", "live").out == "no incidents\n"
    assert cli.ok("incidents", "list", project_id, "--reference", "inv_other").out == "no incidents\n"
    shown_json = cli.json("incidents", "show", incident_id)
    assert shown_json == api_get(stack, admin, f"/api/v1/incidents/{incident_id}")

    # --status acknowledged: the open incidents someone acknowledged, as the API's filter.
    async def acknowledged_ids() -> list[str]:
        listed = cli.json("incidents", "list", project_id, "--status", "acknowledged")
        return [i["id"] for i in listed["items"]]

    assert await acknowledged_ids() == []
    acknowledged = cli.ok("incidents", "acknowledge", incident_id).out
    assert re.search(r"^acknowledged\s+\d{4}-\d\d-\d\dT\S+Z$", acknowledged, re.MULTILINE)
    await eventually(acknowledged_ids, lambda found: found == [incident_id])

    # Retrying with the same --idempotency-key repeats the answer: one replay.
    first = cli.ok("incidents", "reprocess", incident_id, "--idempotency-key", "reprocess-once").out
    again = cli.ok("incidents", "reprocess", incident_id, "--idempotency-key", "reprocess-once").out
    replay_id = re.search(r"^replay id\s+(rpl_\w+)$", first, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert again == first
    shown = cli.ok("incidents", "show", incident_id).out
    assert re.findall(r"^replay\s+(rpl_\w+) by operator:opr_\w+ at \S+: 0 attempts, no outcome yet; "
                      r"delivery .+$", shown,
                      re.MULTILINE) == [replay_id]

    missing_note = cli("incidents", "resolve", incident_id)
    assert missing_note.code == 2 and "--note" in missing_note.err
    resolved = cli.json("incidents", "resolve", incident_id, "--note", "Granted by hand")
    assert (resolved["status"], resolved["resolution"]) == ("resolved", "manual")

    refused = cli("incidents", "reprocess", incident_id)
    assert refused.code == 1 and "Incident resolved (409)" in refused.err
