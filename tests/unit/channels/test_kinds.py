"""One list of destination kinds: every channel module's kind is in it, and the operator API, its
OpenAPI schema and the CLI offer exactly those kinds."""

from __future__ import annotations

import importlib
import pkgutil

import channels
from api_gateway.openapi import document
from api_gateway.operator_api.bodies import DESTINATION_BODIES, parse_destination
from channels import KINDS
from channels.kind import Kind
from sendpromptly.cli_operator_api import destinations_add
from topics.fields import FieldErrors


def test_every_channel_module_that_declares_a_kind_is_listed_under_its_name() -> None:
    declared = {}
    for module in pkgutil.iter_modules(channels.__path__):
        kind = getattr(importlib.import_module(f"channels.{module.name}"), "KIND", None)
        if isinstance(kind, Kind):
            declared[kind.name] = kind
    assert declared == KINDS


def test_the_api_takes_a_body_of_each_kind_and_names_them_all_for_any_other() -> None:
    assert list(DESTINATION_BODIES) == list(KINDS)
    for name, body in DESTINATION_BODIES.items():
        assert parse_destination({"type": name, "target": "x"}).type == name
        assert body.__name__ == f"{name.capitalize()}DestinationCreate"
    try:
        parse_destination({"type": "sms", "target": "+1"})
    except FieldErrors as exc:
        assert ("type", "must be one of " + ", ".join(KINDS)) in exc.errors
    else:
        raise AssertionError("an unknown kind was taken")


def test_the_openapi_document_offers_the_kinds() -> None:
    schemas = document()["components"]["schemas"]
    assert list(schemas["AlertDestinationCreate"]["discriminator"]["mapping"]) == list(KINDS)
    assert schemas["AlertDestination"]["properties"]["type"]["enum"] == list(KINDS)
    assert schemas["Alert"]["properties"]["destination_type"]["enum"] == list(KINDS)
    for name in KINDS:
        assert schemas[f"{name.capitalize()}DestinationCreate"]["properties"]["type"] == {"enum": [name]}


def test_the_cli_offers_the_kinds() -> None:
    (option,) = [param for param in destinations_add.params if param.name == "type_"]
    assert list(option.type.choices) == list(KINDS)  # type: ignore[attr-defined]
