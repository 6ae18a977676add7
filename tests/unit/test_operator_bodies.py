"""Request bodies of the operator API: each broken rule named with what the field must be."""

from __future__ import annotations

from typing import Any

import pytest

from api_gateway.operator_api.bodies import (
    parse_destination,
    parse_operator_invite,
    parse_project_create,
    parse_project_update,
    parse_resolve,
)
from topics.fields import FieldErrors


def refusal(parse: Any, doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(FieldErrors) as refused:
        parse(doc)
    return refused.value.errors


def test_a_project_create_names_every_bad_field() -> None:
    assert sorted(refusal(parse_project_create, {"name": " ", "mode": "prod", "timeout_minutes": True,
                                                 "snapshots_enabled": 1, "colour": "red"})) == [
        ("colour", "is not a known field"),
        ("mode", "must be one of test, live"),
        ("name", "must be 1 to 200 printable characters"),
        ("snapshots_enabled", "must be true or false"),
        ("timeout_minutes", "must be a whole number of minutes from 1 to 10080"),
    ]
    assert refusal(parse_project_create, {"mode": "test"}) == [("name", "is required")]
    # Null is a missing field when creating: the default applies.
    assert parse_project_create({"name": "Shop", "mode": None}).values == {"name": "Shop"}


def test_an_update_refuses_null_and_changes_only_the_fields_given() -> None:
    assert sorted(refusal(parse_project_update, {"name": None, "mode": "prod", "timeout_minutes": None})) == [
        ("mode", "must be one of test, live"),
        ("name", "cannot be null"),
        ("timeout_minutes", "cannot be null"),
    ]
    assert parse_project_update({"snapshots_enabled": False}).values == {"snapshots_enabled": False}


def test_a_destination_of_an_unknown_type_names_the_type_and_the_other_faults() -> None:
    assert refusal(parse_destination, {"type": "pager", "target": 3}) == [
        ("type", "must be one of email, slack"), ("target", "must be an email address")]
    assert parse_destination({"type": "slack", "target": "https://hooks.example/x"}).type == "slack"


def test_an_invite_names_every_bad_field_and_sorts_its_projects() -> None:
    bad = {"email": "nobody", "admin": "yes", "project_ids": ["x"]}
    assert sorted(refusal(parse_operator_invite, bad)) == [
        ("admin", "must be true or false"),
        ("email", "must be an email address like ops@example.com"),
        ("project_ids", "must be a list of project ids (prj_...)"),
    ]
    invite = parse_operator_invite({"email": "a@example.com", "project_ids": ["prj_b", "prj_a", "prj_b"]})
    assert (invite.is_admin, invite.project_ids) == (False, ["prj_a", "prj_b"])


@pytest.mark.parametrize("note", [" \n", "x" * 2049, "a\x00b", "é" * 1025])
def test_a_resolution_note_must_be_printable_text_within_its_size(note: str) -> None:
    assert [field for field, _ in refusal(parse_resolve, {"note": note})] == ["note"]


def test_a_resolution_note_may_hold_newlines_tabs_and_its_full_size_in_utf8() -> None:
    assert parse_resolve({"note": "fixed:\n\tby hand"}) == "fixed:\n\tby hand"
    assert parse_resolve({"note": "é" * 1024}) == "é" * 1024
