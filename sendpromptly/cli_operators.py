"""``sendpromptly operators ...``: admins manage operators, their tokens and memberships through the
operator API (``sendpromptly operator create`` makes only the very first admin, in the database)."""

from __future__ import annotations

from collections.abc import Callable

import click

from sendpromptly.cli_operator_api import (
    Call,
    Column,
    _secret,
    _shown_once_note,
    api_command,
    field,
    pages,
    table_columns,
)
from sendpromptly.client import Document, OperatorClient

OPERATOR_LINES: list[Column] = [
    ("id", field("id")), ("email", field("email")), ("admin", field("admin")),
    ("projects", lambda o: ", ".join(o["project_ids"]) or "-"), ("created", field("created_at")),
    ("removed", field("deactivated_at")),
]
TOKEN_LINES: list[Column] = [("id", field("id")), ("operator", field("operator_id")),
                             ("created", field("created_at")), ("revoked", field("revoked_at"))]


@click.group()
def operators() -> None:
    """Operators, their tokens and project memberships (admins only)."""


@api_command(operators, "list")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many [default: all].")
def operators_list(call: Call, limit: int | None) -> None:
    """Every operator, removed ones too, newest first."""
    call.listing(pages(call.client.list_operators, limit), table_columns(OPERATOR_LINES), "no operators")


@api_command(operators, "invite", mutating=True)
@click.option("--email", required=True, help="Their email (their console login).")
@click.option("--admin", is_flag=True, help="May see and change every project.")
@click.option("--project", "projects", multiple=True, help="A project they are a member of (repeatable).")
def operators_invite(call: Call, email: str, admin: bool, projects: tuple[str, ...]) -> None:
    """Invite an operator; their token and console password are printed this once."""
    invited = call.client.invite_operator(email, admin=admin, project_ids=list(projects),
                                          idempotency_key=call.idempotency_key)
    shown_once = [*OPERATOR_LINES, ("token", _secret("token")), ("password", _secret("password"))]
    call.record(invited, shown_once, _shown_once_note(invited, "token") + " The password too.")


@api_command(operators, "remove", mutating=True)
@click.argument("operator_id")
def operators_remove(call: Call, operator_id: str) -> None:
    """Remove an operator: their tokens are refused within seconds."""
    removed = call.client.remove_operator(operator_id, idempotency_key=call.idempotency_key)
    call.record(removed, OPERATOR_LINES)


def _membership_command(name: str, summary: str,
                        change: Callable[[OperatorClient], Callable[..., Document]]) -> None:
    """``operators add-to-project`` and ``remove-from-project``: the same arguments and answer."""

    @api_command(operators, name, mutating=True)
    @click.argument("operator_id")
    @click.argument("project_id")
    def command(call: Call, operator_id: str, project_id: str) -> None:
        changed = change(call.client)(project_id, operator_id, idempotency_key=call.idempotency_key)
        call.record(changed, OPERATOR_LINES)

    operators.commands[name].help = summary


_membership_command("add-to-project", "Make an operator a member of a project.", lambda c: c.add_member)
_membership_command("remove-from-project", "Take an operator's membership of a project away.",
                    lambda c: c.remove_member)


@operators.group()
def token() -> None:
    """An operator's personal tokens (op_...)."""


@api_command(token, "issue", mutating=True)
@click.argument("operator_id")
def token_issue(call: Call, operator_id: str) -> None:
    """Issue a new token; it is printed this once."""
    issued = call.client.issue_token(operator_id, idempotency_key=call.idempotency_key)
    call.record(issued, [*TOKEN_LINES, ("token", _secret("token"))], _shown_once_note(issued, "token"))


@api_command(token, "revoke", mutating=True)
@click.argument("operator_id")
@click.argument("token_id")
def token_revoke(call: Call, operator_id: str, token_id: str) -> None:
    """Revoke a token: refused within seconds."""
    call.record(call.client.revoke_token(operator_id, token_id, idempotency_key=call.idempotency_key),
                TOKEN_LINES)
