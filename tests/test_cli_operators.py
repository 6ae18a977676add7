"""``sendpromptly operators ...`` end to end: the real CLI as a subprocess against a real gateway on
real Kafka and PostgreSQL; the first admin comes from ``sendpromptly operator create``, everyone
else from the API."""

from __future__ import annotations

import time

import pytest

from harness.stack import Stack
from tests.support.cli import Cli, Operator, create_operator

pytestmark = pytest.mark.e2e


def refused(cli: Cli, *args: str) -> str:
    """Wait (past the gateway's 2 s credential cache) until the command fails; its stderr."""
    deadline = time.monotonic() + 5
    while (ran := cli(*args)).code == 0:
        assert time.monotonic() < deadline, f"sendpromptly {' '.join(args)} still succeeds"
        time.sleep(0.2)
    return ran.err


def test_an_admin_invites_a_member_who_sees_one_project_until_removed(
        stack: Stack, database_url: str) -> None:
    admin = Cli(stack, create_operator(database_url, "first-admin@example.com", "--admin"))
    mine = admin.json("projects", "create", "--name", "Mine")["id"]
    theirs = admin.json("projects", "create", "--name", "Theirs")["id"]

    invited = admin.ok("operators", "invite", "--email", "member@example.com")
    assert "shown only this once" in invited.out
    pages = admin.ok("operators", "list", "--json").json_lines()
    member_doc = next(o for page in pages for o in page["items"] if o["email"] == "member@example.com")
    assert member_doc["project_ids"] == [] and member_doc["active"] is True

    token = admin.json("operators", "token", "issue", member_doc["id"])
    member = Cli(stack, Operator("member@example.com", token["token"]))
    assert admin.json("operators", "add-to-project", member_doc["id"], mine)["project_ids"] == [mine]
    deadline = time.monotonic() + 5
    while [p["id"] for p in member.json("projects", "list")["items"]] != [mine]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "(404)" in member("projects", "show", theirs).err
    assert "Admins only (403)" in member("operators", "list").err

    admin.ok("operators", "remove-from-project", member_doc["id"], mine)
    assert "(404)" in refused(member, "projects", "show", mine)
    admin.ok("operators", "add-to-project", member_doc["id"], mine)

    admin.ok("operators", "token", "revoke", member_doc["id"], token["id"])
    assert "Unauthorized (401)" in refused(member, "projects", "list")

    removed = admin.json("operators", "remove", member_doc["id"])
    assert removed["active"] is False
    expected = {"operator.member_added", "operator.member_removed", "operator.token_revoked",
                "operator.removed"}
    deadline = time.monotonic() + 30  # the audit sink trails the API
    while not expected <= {e["action"] for e in admin.json("audit-log", mine)["items"]}:
        assert time.monotonic() < deadline, "the audit log lacks an operator action"
        time.sleep(0.3)
