"""Typed declarations (msgspec Structs) of every body and message, and what is derived from them.

A declaration's field types carry its rules (``topics.fields``), so decoding validates. The fast
path is msgspec's decoder, which stops at the first broken rule; only when it refuses does
``field_errors`` go through the document field by field, so a refusal names every broken rule.
It also treats an explicit ``null`` as a missing field, as the hand-written readers did: a direct
producer's ``"mode": null`` decodes.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

import msgspec
import orjson

from topics.fields import FieldErrors, Rule, format_timestamp, one_of

D = TypeVar("D", bound="Declared")


class Declared(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A body or message: refuses unknown fields, leaves out optional ones that are unset."""

    # What its JSON Schema says besides its fields' rules: the rules across fields, if any.
    JSON_SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        # The checks msgspec does not make (``Rule``s); a refusal here is a ValidationError to the
        # decoder, and ``field_errors`` names the field.
        checks = _CHECKS.get(type(self))
        if checks is None:
            checks = _CHECKS[type(self)] = _checks_of(type(self))
        for name, check, message in checks:
            value = getattr(self, name)
            # UNSET: a field left out of a body that refuses null (a project update).
            if value is not None and value is not msgspec.UNSET and not check(value):
                raise ValueError(f"{name} must be {message}")

    @classmethod
    def cross_field_errors(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Rules across fields, as ``(field, message)``, given the fields' values (those given);
        none unless a declaration says so, and then its ``__post_init__`` applies them too."""
        return []


class Message(Declared, frozen=True, kw_only=True, tag_field="schema"):
    """A topic value: its ``schema`` tag (``receipt.v1``, ...) is the declaration's ``tag``."""

    @classmethod
    def schema(cls) -> str:
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str):
            raise TypeError(f"{cls.__name__} declares no schema tag: give it tag=\"<name>.v<n>\"")
        return tag

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (timestamps as ``format_timestamp`` writes them), e.g. for a jsonb column."""
        doc: dict[str, Any] = orjson.loads(to_json(self))
        return doc

    @classmethod
    def from_dict(cls: type[D], doc: Any) -> D:
        """A document as ``to_dict`` made it; ``FieldErrors`` naming every broken rule otherwise."""
        return convert(cls, doc)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(value: Declared) -> bytes:
    """JSON with timestamps in the one form we have always written (UTC, milliseconds, ``Z``, the
    form the OpenAPI document states too): msgspec's own encoder writes microseconds."""
    return orjson.dumps(msgspec.to_builtins(value, builtin_types=(datetime, bytes)), default=_json_default,
                        option=orjson.OPT_PASSTHROUGH_DATETIME)


def json_schemas(*classes: type[Declared], ref_template: str) -> dict[str, Any]:
    """The JSON Schemas of declarations (and of the ones they refer to), by name, untitled: the
    name is the title, and a schema derived from another (a batch item) would keep a wrong one."""
    _, schemas = msgspec.json.schema_components(classes, ref_template=ref_template)
    for cls in classes:
        schemas[cls.__name__].update(cls.JSON_SCHEMA_EXTRA)
    for schema in schemas.values():
        schema.pop("title", None)
    return schemas


@cache
def json_decoder(cls: type[D]) -> msgspec.json.Decoder[D]:
    return msgspec.json.Decoder(cls)


def convert(cls: type[D], doc: Any) -> D:
    """``doc`` (decoded JSON) as a ``cls``; ``FieldErrors`` naming every broken rule otherwise."""
    try:
        return msgspec.convert(doc, cls)
    except msgspec.ValidationError:
        pass
    errors = field_errors(cls, doc)
    if errors:
        raise FieldErrors(errors)
    return without_nulls(cls, doc)


def without_nulls(cls: type[D], doc: dict[str, Any]) -> D:
    """``doc`` as a ``cls`` once its explicit nulls are read as missing fields, when only they
    stood in the way (``field_errors`` found nothing)."""
    try:
        return msgspec.convert({k: v for k, v in doc.items() if v is not None}, cls)
    except msgspec.ValidationError as exc:  # a rule field_errors does not know of: still named
        raise FieldErrors([("", str(exc))]) from None


def field_errors(cls: type[Declared], doc: Any) -> list[tuple[str, str]]:
    """Every broken rule of ``doc`` against ``cls``, as ``(field, message)``; empty when it is a
    ``cls`` once its nulls are read as missing fields."""
    if not isinstance(doc, dict):
        return [("", "must be a JSON object")]
    config = cls.__struct_config__
    fields = msgspec.structs.fields(cls)
    known = {f.encode_name for f in fields}
    errors: list[tuple[str, str]] = []
    if isinstance(config.tag_field, str):
        known.add(config.tag_field)
        if doc.get(config.tag_field) != config.tag:
            errors.append((config.tag_field, f"must be {config.tag!r}"))
    if config.forbid_unknown_fields:
        errors += [(name, "is not a known field") for name in sorted(set(doc) - known)]
    values: dict[str, Any] = {}
    for info in fields:
        value = doc.get(info.encode_name)
        if value is None:
            if info.required:
                errors.append((info.encode_name, "is required"))
            continue
        try:
            values[info.name] = msgspec.convert(value, info.type)
        except msgspec.ValidationError as exc:
            errors.append((info.encode_name, _message(info.type, exc)))
            continue
        for rule in _rules_of(info.type):
            if not rule.check(values[info.name]):
                errors.append((info.encode_name, f"must be {rule.message}"))
    return errors + cls.cross_field_errors(values)


def _message(field_type: Any, exc: msgspec.ValidationError) -> str:
    """What a refusal says of one field: its type's description ("must be ..."), else msgspec's."""
    description = _description(field_type)
    if description:
        return f"must be {description}"
    return str(exc).split(" - at `", 1)[0]


def _unwrapped(field_type: Any) -> list[Any]:
    """The types of an optional field (``X | None`` is ``X``)."""
    if get_origin(field_type) in (Union, types.UnionType):
        return [t for t in get_args(field_type) if t is not type(None)]
    return [field_type]


def _metadata(field_type: Any) -> list[Any]:
    return [m for t in _unwrapped(field_type) if get_origin(t) is Annotated for m in t.__metadata__]


def _description(field_type: Any) -> str | None:
    choices = [t for t in _unwrapped(field_type) if isinstance(t, type) and issubclass(t, StrEnum)]
    if choices:
        return one_of(choices[0])
    return next((m.description for m in _metadata(field_type)
                 if isinstance(m, msgspec.Meta) and m.description), None)


def _rules_of(field_type: Any) -> list[Rule]:
    return [m for m in _metadata(field_type) if isinstance(m, Rule)]


_CHECKS: dict[type[Declared], tuple[tuple[str, Callable[[Any], bool], str], ...]] = {}


def _checks_of(cls: type[Declared]) -> tuple[tuple[str, Callable[[Any], bool], str], ...]:
    return tuple((info.name, rule.check, rule.message) for info in msgspec.structs.fields(cls)
                 for rule in _rules_of(info.type))
