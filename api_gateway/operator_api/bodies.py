"""Request bodies of the operator API, declared once with the shared field rules; the OpenAPI
document derives their schemas."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, UnsetType, defstruct
from msgspec.structs import force_setattr

from api_gateway.ingest_bodies import TimeoutMinutes
from channels import KINDS, Kind
from channels.email import EmailAddress
from common.ids import is_well_formed
from common.targets import MAX_URL_CHARS, URL_SCHEMA, TargetError, check_email
from topics.declared import Declared, convert, field_errors
from topics.fields import FieldErrors, Mode, ProjectId, Rule

MAX_NAME_CHARS = 200
MAX_LABEL_CHARS = 100
MAX_NOTE_BYTES = 2048

# ``str.isprintable`` refuses every control character; these are the ones a pattern can name in a
# form Python, ECMA-262 and Rust regexes all read (``topics.fields.PRINTABLE``), and at least one
# character that is not a space (``value.strip()`` is not empty).
_PRINTABLE_CHAR = r"[^\x00-\x1f\x7f-\x9f]"
PRINTABLE_NOT_BLANK = rf"^{_PRINTABLE_CHAR}*[^\x00-\x20\x7f-\x9f]{_PRINTABLE_CHAR}*$"
# A resolution note: printable characters, newlines and tabs, and not only whitespace.
_NOTE_CHAR = r"[^\x00-\x08\x0b-\x1f\x7f-\x9f]"
NOTE = rf"^{_NOTE_CHAR}*[^\x00-\x20\x7f-\x9f]{_NOTE_CHAR}*$"


def _is_printable_name(value: str) -> bool:
    return bool(value.strip()) and value.isprintable()


def _is_note(note: str) -> bool:
    fits = len(note) * 4 <= MAX_NOTE_BYTES or len(note.encode()) <= MAX_NOTE_BYTES
    return fits and bool(note.strip()) and all(c.isprintable() or c in "\n\t" for c in note)


_NOTE_RULE = f"1 to {MAX_NOTE_BYTES} bytes of printable text (newlines and tabs allowed), not only spaces"

_NAME_RULE = f"1 to {MAX_NAME_CHARS} printable characters"
_LABEL_RULE = f"1 to {MAX_LABEL_CHARS} printable characters"
ProjectName = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS, description=_NAME_RULE,
                                  extra_json_schema={"pattern": PRINTABLE_NOT_BLANK}),
                        Rule(_is_printable_name, _NAME_RULE)]
KeyLabel = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL_CHARS, description=_LABEL_RULE,
                               extra_json_schema={"pattern": PRINTABLE_NOT_BLANK}),
                     Rule(_is_printable_name, _LABEL_RULE)]
Flag = Annotated[bool, Meta(description="true or false")]
Note = Annotated[str, Meta(min_length=1, max_length=MAX_NOTE_BYTES, extra_json_schema={"pattern": NOTE},
                           description=_NOTE_RULE), Rule(_is_note, _NOTE_RULE)]
# The URL and address checks (``common.targets``) name the exact fault, and a URL's host is
# checked against the project's mode and resolved: the declarations state their rules in the schema
# only, and the handlers check them.
CallbackUrl = Annotated[str, Meta(extra_json_schema=URL_SCHEMA, description=(
    f"an http(s) URL of at most {MAX_URL_CHARS} characters with a host, without user:password@ or "
    "#fragment (https in live mode)"))]
ProjectIds = Annotated[list[ProjectId], Meta(description="a list of project ids (prj_...)"),
                       Rule(lambda ids: all(is_well_formed("prj", p) for p in ids),
                            "a list of project ids (prj_...)")]


class _ProjectBody(Declared, frozen=True, kw_only=True):
    @property
    def values(self) -> dict[str, Any]:
        """The fields given, by name."""
        return {name: value for name in self.__struct_fields__
                if (value := getattr(self, name)) is not None and value is not UNSET}


class ProjectCreate(_ProjectBody, frozen=True, kw_only=True):
    """Defaults: mode test, timeout_minutes 30, snapshots_enabled false; mode live is refused (409)."""

    name: ProjectName
    mode: Mode | None = None
    timeout_minutes: TimeoutMinutes | None = None
    snapshots_enabled: Flag | None = None


class ProjectUpdate(_ProjectBody, frozen=True, kw_only=True):
    """Only the fields given change; null is refused. Going live may be refused (409 naming why)."""

    # In an update, null would mean "unset", and none of these can be unset.
    name: ProjectName | UnsetType = UNSET
    mode: Mode | UnsetType = UNSET
    timeout_minutes: TimeoutMinutes | UnsetType = UNSET
    snapshots_enabled: Flag | UnsetType = UNSET


class ApiKeyCreate(Declared, frozen=True, kw_only=True):
    label: KeyLabel


class RepairCallbackSet(Declared, frozen=True, kw_only=True):
    url: CallbackUrl


class DestinationCreate(Declared, frozen=True, kw_only=True, tag_field="type"):
    """A new alert destination: one declaration per kind (``DESTINATION_BODIES``), tagged by ``type``."""

    # Each kind's declaration states its own target's rules.
    target: str

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)


def _destination_body(kind: Kind) -> type[DestinationCreate]:
    """E.g. ``SlackDestinationCreate``: ``type`` "slack" and the Slack channel's ``target``."""
    body = defstruct(f"{kind.name.capitalize()}DestinationCreate", [("target", kind.target)],
                     bases=(DestinationCreate,), module=__name__, tag=kind.name, frozen=True, kw_only=True)
    assert issubclass(body, DestinationCreate)  # noqa: S101 (defstruct was given it as its base)
    return body


# By kind, in the channels' order.
DESTINATION_BODIES = {name: _destination_body(kind) for name, kind in KINDS.items()}


class OperatorInvite(Declared, frozen=True, kw_only=True):
    email: EmailAddress
    admin: Flag | None = None
    project_ids: ProjectIds | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for field, message in self.cross_field_errors({"email": self.email}):
            raise ValueError(f"{field}: {message}")
        force_setattr(self, "project_ids", sorted(set(self.project_ids or ())))

    @classmethod
    def cross_field_errors(cls, values: Any) -> list[tuple[str, str]]:
        if values.get("email") is None:
            return []
        try:
            check_email(values["email"])
        except TargetError as exc:
            return [("email", str(exc))]
        return []

    @property
    def is_admin(self) -> bool:
        return bool(self.admin)


class IncidentResolve(Declared, frozen=True, kw_only=True):
    note: Note


def parse_project_create(doc: Any) -> ProjectCreate:
    return convert(ProjectCreate, doc)


def parse_project_update(doc: Any) -> ProjectUpdate:
    if isinstance(doc, dict):
        nulls = [(field, "cannot be null") for field in ProjectUpdate.__struct_fields__ if
                 field in doc and doc[field] is None]
        if nulls:
            raise FieldErrors(field_errors(ProjectUpdate, doc) + nulls)
    return convert(ProjectUpdate, doc)


def parse_key_create(doc: Any) -> str:
    return convert(ApiKeyCreate, doc).label


def parse_callback(doc: Any) -> str:
    return convert(RepairCallbackSet, doc).url


def parse_destination(doc: Any) -> DestinationCreate:
    kind = doc.get("type") if isinstance(doc, dict) else None
    body = DESTINATION_BODIES.get(kind) if isinstance(kind, str) else None
    if body is not None:
        return convert(body, doc)
    # No declaration to check it against: the other faults as the first kind would name them.
    first = next(iter(DESTINATION_BODIES.values()))
    raise FieldErrors([(field, "must be one of " + ", ".join(KINDS)) if field == "type"
                       else (field, message) for field, message in field_errors(first, doc)])


def parse_operator_invite(doc: Any) -> OperatorInvite:
    return convert(OperatorInvite, doc)


def parse_resolve(doc: Any) -> str:
    return convert(IncidentResolve, doc).note
