"""The ``sendpromptly`` operator commands end to end: the real CLI, run as a subprocess, against a real
gateway on real Kafka and PostgreSQL, with operators made by ``sendpromptly operator create``."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

import pytest

from harness.processes import free_port
from harness.stack import Stack
from tests.support.cli import Cli, Operator, api_get, bootstrap, clean_env, create_operator, sendpromptly

pytestmark = pytest.mark.e2e

LIVE_PREREQUISITES = ("repair_callback_url", "api_keys", "alert_destinations")


def audit_entries(stack: Stack, operator: Operator, project_id: str, count: int) -> None:
    """Wait until the audit sink has appended ``count`` entries of the project (it trails the API)."""
    path = f"/api/v1/projects/{project_id}/audit-log?limit=200"

    def appended() -> int:
        page = api_get(stack, operator, path)
        found = len(page["items"])
        while page["next_cursor"]:
            page = api_get(stack, operator, f"{path}&cursor={page['next_cursor']}")
            found += len(page["items"])
        return found

    deadline = time.monotonic() + 30
    while appended() < count:
        assert time.monotonic() < deadline, f"the audit log of {project_id} did not reach {count} entries"
        time.sleep(0.2)


def test_a_project_goes_live_only_once_it_has_a_callback_a_key_and_an_alert_destination(
        cli: Cli, stack: Stack, admin: Operator) -> None:
    project = cli.json("projects", "create", "--name", "Checkout")
    assert project["mode"] == "test"
    project_id = project["id"]

    def missing_for_live() -> set[str]:
        ran = cli("projects", "update", project_id, "--mode", "live")
        assert ran.code == 1 and ran.out == ""
        assert "Not ready for live mode (409)" in ran.err
        return {name for name in LIVE_PREREQUISITES if f"{name}: " in ran.err}

    assert missing_for_live() == {"repair_callback_url", "api_keys", "alert_destinations"}

    callback_url = f"https://127.0.0.1:{free_port()}/repair"
    callback = cli.ok("callback", "set", project_id, callback_url)
    assert callback_url in callback.out and re.search(r"whsec_\S+", callback.out)
    assert "shown only this once" in callback.out
    assert missing_for_live() == {"api_keys", "alert_destinations"}

    key = cli.ok("keys", "create", project_id, "--label", "production")
    assert re.search(r"sk_[A-Za-z0-9]{20,}", key.out) and "shown only this once" in key.out
    assert missing_for_live() == {"alert_destinations"}

    cli.ok("destinations", "add", project_id, "--type", "email", "--target", "ops@example.com")
    live = cli.ok("projects", "update", project_id, "--mode", "live")
    assert re.search(r"^mode\s+live$", live.out, re.MULTILINE)

    assert cli.json("projects", "show", project_id)["mode"] == "live"
    audit_entries(stack, admin, project_id, 5)
    actions = [entry["action"] for entry in cli.json("audit-log", project_id)["items"]]
    assert actions == ["project.mode_switched", "destination.added", "api_key.created", "callback.set",
                       "project.created"]


def test_json_output_is_exactly_what_the_api_answers(cli: Cli, stack: Stack, admin: Operator) -> None:
    created = cli.json("projects", "create", "--name", "Billing", "--timeout-minutes", "45", "--snapshots")
    project_id = created["id"]
    assert created == api_get(stack, admin, f"/api/v1/projects/{project_id}")
    assert (created["timeout_minutes"], created["snapshots_enabled"]) == (45, True)
    assert cli.json("projects", "show", project_id) == created

    key = cli.json("keys", "create", project_id, "--label", "ci")
    assert key["key"].startswith("sk_")
    destination = cli.json("destinations", "add", project_id, "--type", "email", "--target", "a@example.com")
    callback = cli.json("callback", "set", project_id, "http://127.0.0.1:9/repair")
    assert callback["signing_secret"].startswith("whsec_")
    audit_entries(stack, admin, project_id, 4)

    reads = {
        ("projects", "list"): "/api/v1/projects?limit=200",
        ("keys", "list", project_id): f"/api/v1/projects/{project_id}/keys",
        ("destinations", "list", project_id): f"/api/v1/projects/{project_id}/alert-destinations",
        ("callback", "show", project_id): f"/api/v1/projects/{project_id}/repair-callback",
        ("audit-log", project_id): f"/api/v1/projects/{project_id}/audit-log?limit=50",
    }
    for args, path in reads.items():
        assert cli.json(*args) == api_get(stack, admin, path), args
    assert [k["id"] for k in cli.json("keys", "list", project_id)["items"]] == [key["id"]]
    assert [d["id"] for d in cli.json("destinations", "list", project_id)["items"]] == [destination["id"]]
    # --limit pages through keys too.
    second = cli.json("keys", "create", project_id, "--label", "ci 2")
    assert [k["id"] for k in cli.json("keys", "list", project_id, "--limit", "1")["items"]] == [second["id"]]
    # A test callback to where nothing answers: shown, and the exit status says it would not deliver.
    tested = cli("callback", "test", project_id)
    assert tested.code == 1 and re.search(r"^verdict\s+retry$", tested.out, re.MULTILINE), tested.err
    assert re.search(r"^http status\s+-$", tested.out, re.MULTILINE)
    assert "ClientConnectorError" in tested.out


def test_audit_log_all_follows_every_page(cli: Cli, stack: Stack, admin: Operator) -> None:
    project_id = cli.json("projects", "create", "--name", "Busy")["id"]
    # 210 entries: more than the API's largest page (200), so --all has to follow next_cursor.
    for n in range(209):
        _patch(stack, admin, project_id, {"timeout_minutes": 31 + n})
    audit_entries(stack, admin, project_id, 210)

    pages = cli.ok("audit-log", project_id, "--all", "--json").json_lines()
    assert [len(page["items"]) for page in pages] == [200, 10]
    assert pages[0] == api_get(stack, admin, f"/api/v1/projects/{project_id}/audit-log?limit=200")
    assert pages[1]["next_cursor"] is None
    seqs = [entry["seq"] for page in pages for entry in page["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 210

    table = cli.ok("audit-log", project_id, "--all").out.splitlines()
    assert table[0].split() == ["SEQ", "TIME", "ACTOR", "ACTION", "TARGET"] and len(table) == 1 + 210
    assert len(cli.ok("audit-log", project_id).out.splitlines()) == 1 + 50
    limited = cli.ok("audit-log", project_id, "--limit", "3", "--json").json_lines()
    assert [len(page["items"]) for page in limited] == [3]


def _patch(stack: Stack, operator: Operator, project_id: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{stack.base_url}/api/v1/projects/{project_id}", data=json.dumps(body).encode(), method="PATCH",
        headers={"Authorization": f"Bearer {operator.token}", "Content-Type": "application/json",
                 "Idempotency-Key": f"patch-{body['timeout_minutes']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_retrying_with_the_same_idempotency_key_creates_one_key(cli: Cli) -> None:
    project_id = cli.json("projects", "create", "--name", "Retry")["id"]
    first = cli.ok("keys", "create", project_id, "--label", "ci", "--idempotency-key", "create-ci-key")
    again = cli.ok("keys", "create", project_id, "--label", "ci", "--idempotency-key", "create-ci-key")

    key = re.search(r"sk_[A-Za-z0-9]+", first.out)
    assert key is not None and key.group() not in again.out
    assert "shown only the first time" in again.out
    (listed,) = cli.json("keys", "list", project_id)["items"]
    assert listed["id"] in first.out and listed["id"] in again.out


def test_a_member_gets_not_found_for_a_project_that_is_not_theirs(cli: Cli, stack: Stack,
                                                                   database_url: str) -> None:
    mine = cli.json("projects", "create", "--name", "Mine")["id"]
    theirs = cli.json("projects", "create", "--name", "Theirs")["id"]
    member = Cli(stack, create_operator(database_url, "member@example.com", "--project", mine))

    assert member.json("projects", "show", mine)["id"] == mine
    assert [p["id"] for p in member.json("projects", "list")["items"]] == [mine]
    for args in (["projects", "show", theirs], ["projects", "update", theirs, "--name", "Taken"],
                 ["keys", "create", theirs, "--label", "x"], ["keys", "list", theirs], ["audit-log", theirs],
                 ["callback", "set", theirs, "http://127.0.0.1:9/x"], ["destinations", "list", theirs]):
        ran = member(*args)
        assert ran.code == 1, args
        assert f"Project not found (404): No project {theirs!r} that you can see." in ran.err, args
    # The same answer as for a project that does not exist: a member learns nothing about ids.
    ghost = member("projects", "show", "prj_doesnotexist")
    assert ghost.err.replace("prj_doesnotexist", theirs) == member("projects", "show", theirs).err
    assert cli.json("projects", "show", theirs)["name"] == "Theirs"


def test_a_revoked_token_is_refused_within_five_seconds(cli: Cli, admin: Operator, database_url: str) -> None:
    cli.ok("projects", "list")
    bootstrap(database_url, "revoke-tokens", "--email", admin.email)
    revoked_at = time.monotonic()

    while True:
        asked_after = time.monotonic() - revoked_at
        ran = cli("projects", "list")
        if ran.code != 0:
            break
        assert asked_after < 5, "the revoked token is still accepted 5 s after it was revoked"
        time.sleep(0.1)
    assert ran.code == 1 and ran.out == ""
    assert "Unauthorized (401): This operator token is unknown or revoked" in ran.err


def test_without_a_token_it_says_which_variable_to_set() -> None:
    ran = sendpromptly("projects", "list", env=clean_env())
    assert ran.code == 1
    assert "SENDPROMPTLY_OPERATOR_TOKEN is not set" in ran.err


def test_an_unreachable_gateway_is_named_and_a_usage_error_exits_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = clean_env(SENDPROMPTLY_OPERATOR_TOKEN="op_unused")
    ran = sendpromptly("projects", "create", "--name", "x", "--url", url, env=env)
    assert ran.code == 1 and f"cannot reach {url}" in ran.err

    usage = sendpromptly("projects", "update", "prj_x", "--url", url, env=env)
    assert usage.code == 2 and "Nothing to change" in usage.err
