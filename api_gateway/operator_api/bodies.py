"""Request bodies of the operator API, checked with the shared field rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sendpromptly.ids import is_well_formed
from sendpromptly.targets import TargetError, check_email
from topics.fields import MODES, Checker

MAX_NAME_CHARS = 200
MAX_LABEL_CHARS = 100
MAX_NOTE_BYTES = 2048
TIMEOUT_MINUTES_RANGE = (1, 10080)


def _name(check: Checker, field: str, max_chars: int, *, required: bool) -> str | None:
    value = check.string(field, required=required)
    if value is not None and not (
            1 <= len(value.strip()) and len(value) <= max_chars and value.isprintable()):
        check.fail(field, f"must be 1 to {max_chars} printable characters")
    return value


def _boolean(check: Checker, field: str) -> bool | None:
    value = check.doc.get(field)
    if value is not None and not isinstance(value, bool):
        check.fail(field, "must be true or false")
        return None
    return value


@dataclass(frozen=True)
class ProjectFields:
    values: dict[str, Any]


_PROJECT_FIELDS = frozenset({"name", "mode", "timeout_minutes", "snapshots_enabled"})


def _project_fields(doc: Any, *, creating: bool) -> ProjectFields:
    check = Checker(doc, allowed=_PROJECT_FIELDS)
    values = {
        "name": _name(check, "name", MAX_NAME_CHARS, required=creating),
        "mode": check.choice("mode", MODES, required=False),
        "timeout_minutes": check.integer("timeout_minutes", *TIMEOUT_MINUTES_RANGE),
        "snapshots_enabled": _boolean(check, "snapshots_enabled"),
    }
    if not creating:
        # In an update, null would mean "unset", and none of these can be unset.
        for field in sorted(_PROJECT_FIELDS & {k for k, v in check.doc.items() if v is None}):
            check.fail(field, "cannot be null")
    check.done()
    return ProjectFields({k: v for k, v in values.items() if v is not None})


def parse_project_create(doc: Any) -> ProjectFields:
    return _project_fields(doc, creating=True)


def parse_project_update(doc: Any) -> ProjectFields:
    return _project_fields(doc, creating=False)


def parse_key_create(doc: Any) -> str:
    check = Checker(doc, allowed=frozenset({"label"}))
    label = _name(check, "label", MAX_LABEL_CHARS, required=True)
    check.done()
    return label  # type: ignore[return-value]


def parse_callback(doc: Any) -> str:
    check = Checker(doc, allowed=frozenset({"url"}))
    url = check.string("url")
    check.done()
    return url  # type: ignore[return-value]


@dataclass(frozen=True)
class DestinationFields:
    type: str
    target: str


def parse_destination(doc: Any) -> DestinationFields:
    check = Checker(doc, allowed=frozenset({"type", "target"}))
    type_ = check.choice("type", ("email", "slack"))
    target = check.string("target")
    check.done()
    return DestinationFields(type_, target)  # type: ignore[arg-type]


@dataclass(frozen=True)
class OperatorInvite:
    email: str
    is_admin: bool
    project_ids: list[str]


def parse_operator_invite(doc: Any) -> OperatorInvite:
    check = Checker(doc, allowed=frozenset({"email", "admin", "project_ids"}))
    email = check.string("email")
    if email is not None:
        try:
            check_email(email)
        except TargetError as exc:
            check.fail("email", str(exc))
    project_ids = check.doc.get("project_ids") or []
    if not (isinstance(project_ids, list)
            and all(isinstance(p, str) and is_well_formed("prj", p) for p in project_ids)):
        check.fail("project_ids", "must be a list of project ids (prj_...)")
        project_ids = []
    is_admin = _boolean(check, "admin") or False
    check.done()
    return OperatorInvite(email, is_admin, sorted(set(project_ids)))  # type: ignore[arg-type]
