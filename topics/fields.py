"""Field rules shared by every producer and consumer of the flow topics.

The gateway checks HTTP bodies with the same rules the agents apply to messages from direct
producers, so a value that passes one passes the other. Each rule is a type: ``msgspec.Meta``
constraints (checked while decoding, and stated in the JSON Schema), its ``description`` (what a
refusal says the value must be), and a ``Rule`` for what JSON Schema cannot say. A choice of
values is a ``StrEnum``: msgspec checks it, the JSON Schema lists its values, and a refusal names
them (``one_of``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from msgspec import Meta

MAX_REFERENCE_CHARS = 200
MAX_TYPE_CHARS = 100
MAX_DETAIL_BYTES = 2 * 1024
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600

C = TypeVar("C", bound=StrEnum)


class Mode(StrEnum):
    """Test or live: a project's mode, and the one its signals, flows and incidents belong to."""

    TEST = "test"
    LIVE = "live"


class ResultStatus(StrEnum):
    """What a result says of the effect: applied, or not."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


def one_of(choices: type[StrEnum]) -> str:
    """What a value of ``choices`` must be, as a refusal says it: "one of test, live"."""
    return "one of " + ", ".join(choices)


def choice_of(choices: type[C], value: str) -> C | None:
    """``value`` as a member of ``choices``; None when it is none of them."""
    try:
        return choices(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Rule:
    """A check msgspec does not make while decoding, beside a type's ``Meta``: one JSON Schema
    cannot state (``str.isprintable``, a size in UTF-8 bytes), or one whose ``pattern`` the schema
    states but which a few string methods check much faster than msgspec's regex (~0.5 µs a field).
    ``message`` completes "must be ..."; ``tests/unit/test_declared.py`` holds each check to its
    pattern."""

    check: Callable[[str], bool]
    message: str


def _utf8_at_most(max_bytes: int) -> Rule:
    # A character is at most 4 bytes: short text needs no encoding to tell.
    return Rule(lambda value: len(value) * 4 <= max_bytes or len(value.encode()) <= max_bytes,
                f"at most {max_bytes} bytes of UTF-8")


def _is_project_id(value: str) -> bool:
    return value.startswith("prj_") and 4 < len(value) <= 68 and value.isascii() and value[4:].isalnum()


def _is_replay_id(value: str) -> bool:
    return value.startswith("rpl_") and 4 < len(value) <= 68 and value.isascii() and value[4:].isalnum()


def _is_type_name(value: str) -> bool:
    # strip() takes off every leading and trailing character of the set: all of them, if all are.
    return not value.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def _is_visible_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable() and " " not in value


# ``str.isprintable`` refuses every control character; the pattern names the ones a regex can in a
# form Python, ECMA-262 and Rust all read, and the Rule refuses the other non-printable characters
# (separators other than the space, format, private-use, unassigned).
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
TYPE_NAME_PATTERN = r"^[A-Za-z0-9._:-]+$"
PROJECT_ID_PATTERN = r"^prj_[A-Za-z0-9]{1,64}$"
REPLAY_ID_PATTERN = r"^rpl_[A-Za-z0-9]{1,64}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"

Reference = Annotated[str, Meta(
    min_length=1, max_length=MAX_REFERENCE_CHARS, extra_json_schema={"pattern": PRINTABLE},
    description=f"1 to {MAX_REFERENCE_CHARS} printable characters (str.isprintable)",
), Rule(str.isprintable, "printable characters only")]
TypeName = Annotated[str, Meta(
    min_length=1, max_length=MAX_TYPE_CHARS, extra_json_schema={"pattern": TYPE_NAME_PATTERN},
    description=f"1 to {MAX_TYPE_CHARS} characters of A-Z a-z 0-9 . _ : -",
), Rule(_is_type_name, f"1 to {MAX_TYPE_CHARS} characters of A-Z a-z 0-9 . _ : -")]
ProjectId = Annotated[str, Meta(extra_json_schema={"pattern": PROJECT_ID_PATTERN},
                                description="a project id (prj_...)"),
                      Rule(_is_project_id, "a project id (prj_...)")]
ReplayId = Annotated[str, Meta(extra_json_schema={"pattern": REPLAY_ID_PATTERN},
                               description="a replay id (rpl_...)"),
                     Rule(_is_replay_id, "a replay id (rpl_...)")]
IdempotencyKey = Annotated[str, Meta(
    min_length=1, max_length=255, extra_json_schema={"pattern": IDEMPOTENCY_KEY_PATTERN},
    description="1 to 255 visible ASCII characters",
), Rule(_is_visible_ascii, "1 to 255 visible ASCII characters")]
TimeoutSeconds = Annotated[int, Meta(
    ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS,
    description=f"a whole number of seconds from {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}",
)]
Detail = Annotated[str, Meta(max_length=MAX_DETAIL_BYTES,
                             description=f"at most {MAX_DETAIL_BYTES} bytes of UTF-8"),
                   _utf8_at_most(MAX_DETAIL_BYTES)]
Timestamp = Annotated[datetime, Meta(tz=True, description="an RFC 3339 timestamp with a time zone")]


class FieldErrors(ValueError):
    """One or more fields break their rule; ``errors`` lists ``(field, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


class Checker:
    """Collects every broken rule of one document, so a client hears about all of them at once."""

    def __init__(self, document: Any):
        self.errors: list[tuple[str, str]] = []
        if not isinstance(document, dict):
            self.errors.append(("", "must be a JSON object"))
            document = {}
        self.doc: dict[str, Any] = document

    def fail(self, field: str, message: str) -> None:
        self.errors.append((field, message))

    def done(self) -> None:
        if self.errors:
            raise FieldErrors(self.errors)

    def _get(self, field: str, required: bool) -> Any:
        if field not in self.doc or self.doc[field] is None:
            if required:
                self.fail(field, "is required")
            return None
        return self.doc[field]

    def string(self, field: str, *, required: bool = True) -> str | None:
        value = self._get(field, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(field, "must be a string")
            return None
        return value

    def reference(self, field: str = "reference") -> str | None:
        value = self.string(field)
        if value is None:
            return None
        if not 1 <= len(value) <= MAX_REFERENCE_CHARS:
            self.fail(field, f"must be 1 to {MAX_REFERENCE_CHARS} characters")
        elif not value.isprintable():
            self.fail(field, "must contain printable characters only")
        return value

    def choice(self, field: str, choices: type[C], *, required: bool = True) -> C | None:
        value = self.string(field, required=required)
        if value is None:
            return None
        member = choice_of(choices, value)
        if member is None:
            self.fail(field, f"must be {one_of(choices)}")
        return member


def parse_timestamp(value: str) -> datetime | None:
    """Parse RFC 3339 into an aware UTC datetime; ``None`` when it is not one."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            return None
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset, and the like
        return None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z``, the one form we write."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # Cut from the plain isoformat ("...:SS[.ffffff]+00:00"): a quarter faster than timespec= and
    # replace(), and every message written formats its times.
    text = moment.isoformat()
    return text[:23] + "Z" if moment.microsecond else text[:19] + ".000Z"
