"""Control-plane actions of the operator API, used by the bootstrap commands and ``sendpromptly demo`` too.

Each one changes the database and records the change in the audit outbox, inside the caller's
transaction (both commit, or neither), naming the ``Actor`` who asked. There is one way to create a
project, an API key or an operator, so the audit log tells the same story whoever did it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from api_gateway.responses import json_document
from common import operator_tokens
from common.apikeys import NewApiKey, generate_api_key
from store import audit, operators, projects
from store.db import Connection
from store.operators import Operator
from store.projects import Project


@dataclass(frozen=True)
class Actor:
    """Who acts, as the audit log names them: ``operator:<id>`` or ``cli:<command>``."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)  # added to each of their entries
    source_address: str | None = None

    async def record(self, conn: Connection, *, project_id: str | None, action: str, target: str,
                     data: dict[str, Any] | None = None) -> None:
        await audit.record(conn, project_id=project_id, actor=self.name, action=action, target=target,
                           data=json_document({**self.data, **(data or {})}),
                           source_address=self.source_address)

    async def record_for_operator(self, conn: Connection, operator: Operator, *, action: str,
                                  data: dict[str, Any] | None = None) -> None:
        """An entry in each chain of the operator's projects, or the system chain for one without."""
        for scope in _scopes(operator.project_ids):
            await self.record(conn, project_id=scope, action=action, target=operator.id,
                              data={"email": operator.email, **(data or {})})


def _scopes(project_ids: Iterable[str]) -> list[str | None]:
    return [*sorted(project_ids)] or [None]  # None: the system chain


class Refused(Exception):
    """Nothing was changed. ``code`` names why (``project-not-found``, ``email-taken``); the message
    says what to do."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def project_document(project: Project) -> dict[str, Any]:
    return {
        "id": project.id, "name": project.name, "mode": project.mode,
        "timeout_minutes": project.timeout_minutes, "snapshots_enabled": project.snapshots_enabled,
        "repair_callback_url": project.repair_callback_url, "created_at": project.created_at,
    }


# Projects and API keys

async def create_project(conn: Connection, actor: Actor, creator_id: str | None,
                         values: dict[str, Any]) -> Project:
    """A project whose creator, if an operator, becomes its member."""
    project = await projects.create_project(conn, **values)
    if creator_id is not None:
        await operators.add_member(conn, project.id, creator_id)
    await actor.record(conn, project_id=project.id, action="project.created", target=project.id,
                       data={"fields": project_document(project)})
    return project


async def create_api_key(conn: Connection, actor: Actor, project_id: str,
                         label: str) -> tuple[str, NewApiKey]:
    """The new key's id and the key itself, which is not stored and cannot be shown again."""
    new_key = generate_api_key()
    key_id = await projects.add_api_key(conn, project_id, label, new_key)
    await actor.record(conn, project_id=project_id, action="api_key.created", target=key_id,
                       data={"label": label, "prefix": new_key.prefix, "last_four": new_key.last_four})
    return key_id, new_key


# Operators

@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str  # op_...; only its hash is stored


@dataclass(frozen=True)
class Invited:
    operator: Operator
    token: IssuedToken
    password: str  # for the console; only its hash is stored


async def invite_operator(conn: Connection, actor: Actor, *, email: str, is_admin: bool,
                          project_ids: list[str], password: str | None = None) -> Invited:
    """An operator with a console password (generated unless given) and one personal token."""
    for project_id in project_ids:
        if await projects.get_project(conn, project_id) is None:
            raise Refused("project-not-found", f"project {project_id} does not exist")
    password = password or secrets.token_urlsafe(18)
    try:
        created = await operators.create_operator(
            conn, email=email, is_admin=is_admin, password_hash=operator_tokens.hash_password(password))
    except operators.EmailTaken:
        raise Refused("email-taken", f"an operator with email {email} exists already") from None
    for project_id in project_ids:
        await operators.add_member(conn, project_id, created.id)
    operator = Operator(created.id, email, is_admin, created.created_at, frozenset(project_ids))
    await actor.record_for_operator(conn, operator, action="operator.created", data={"admin": is_admin})
    return Invited(operator, await issue_token(conn, actor, operator), password)


async def set_password(conn: Connection, actor: Actor, operator: Operator, password: str) -> None:
    """A new console password (only its argon2id hash is stored); the old one stops working."""
    await operators.set_password_hash(conn, operator.id, operator_tokens.hash_password(password))
    await actor.record_for_operator(conn, operator, action="operator.password_set")


async def issue_token(conn: Connection, actor: Actor, operator: Operator) -> IssuedToken:
    token = operator_tokens.generate_token()
    token_id = await operators.add_token(conn, operator.id, operator_tokens.hash_token(token))
    await actor.record_for_operator(conn, operator, action="operator.token_issued",
                                    data={"token_id": token_id})
    return IssuedToken(token_id, token)


async def revoke_token(conn: Connection, actor: Actor, operator: Operator, token_id: str) -> bool:
    """False when the token was revoked already (nothing changes, nothing is audited)."""
    revoked = await operators.revoke_token(conn, operator.id, token_id)
    if revoked:
        await actor.record_for_operator(conn, operator, action="operator.token_revoked",
                                        data={"token_id": token_id})
    return revoked


async def deactivate_operator(conn: Connection, actor: Actor, operator: Operator) -> bool:
    """Their tokens are refused from then on (within the gateway's credential cache period); their
    tokens are revoked too, so none comes back to life. False when they were removed already."""
    if not await operators.deactivate(conn, operator.id):
        return False
    tokens = await operators.revoke_tokens(conn, operator.id)
    await actor.record_for_operator(conn, operator, action="operator.removed",
                                    data={"tokens_revoked": tokens})
    return True


async def set_member(conn: Connection, actor: Actor, project_id: str, operator: Operator, *,
                     member: bool) -> bool:
    """Make the operator a member of the project, or not; False when that was so already (nothing is
    audited)."""
    change = operators.add_member if member else operators.remove_member
    changed = await change(conn, project_id, operator.id)
    if changed:
        await actor.record(conn, project_id=project_id, target=operator.id, data={"email": operator.email},
                           action="operator.member_added" if member else "operator.member_removed")
    return changed
