"""One frozen settings object per process, read from ``SENDPROMPTLY_*`` environment variables.

Every variable is documented in ``docs/configuration.md``. Each field is declared once, its rules
in its type (``msgspec.Meta`` ranges and patterns, ``Literal`` choices); ``Settings.from_env``
parses the variables by those types and the settings check the rules, at start, so a typo fails
the process before it serves anything. A secret may be given as
``SENDPROMPTLY_<NAME>_FILE`` (a path) instead of the value itself, as container platforms mount them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

PREFIX = "SENDPROMPTLY_"


class ConfigError(ValueError):
    """A ``SENDPROMPTLY_*`` variable is missing or malformed; the message names it."""


def _raw(env: Mapping[str, str], name: str) -> str | None:
    key = PREFIX + name
    if key in env:
        return env[key]
    file_key = key + "_FILE"
    if file_key in env:
        try:
            return Path(env[file_key]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{file_key}: cannot read {env[file_key]!r}: {exc.strerror}") from exc
    return None


def _parsed(name: str, raw: str, field_type: Any) -> Any:
    """A variable's text as its field's type (lax: " 8080" is 8080); the field's rules are checked
    when the settings are made."""
    base = get_args(field_type)[0] if get_origin(field_type) is Annotated else field_type
    if base is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{PREFIX}{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")
    if base in (int, float):
        value: Any = raw.strip()
    elif get_origin(base) is tuple:
        value = [item.strip() for item in raw.split(",")]
    else:
        return raw
    try:
        # Parsed as the bare type first, so a rule broken is told as a rule, not as a parse error.
        # (The only list settings are retry delays.)
        return msgspec.convert(value, tuple[float, ...] if get_origin(base) is tuple else base, strict=False)
    except msgspec.ValidationError:
        what = {int: "a whole number", float: "a number"}.get(base, "comma-separated numbers")
        raise ConfigError(f"{PREFIX}{name} must be {what}, got {raw!r}") from None


def _reason(field_type: Any, exc: msgspec.ValidationError) -> str:
    """What a value breaking its field's rules must be, from msgspec's "Expected `int` >= 1 - at
    `$[0]`" (and "must be one of ..." for a choice)."""
    base = get_args(field_type)[0] if get_origin(field_type) is Annotated else field_type
    if get_origin(base) is Literal:
        return "must be one of " + ", ".join(get_args(base))
    text, _, where = str(exc).partition(" - at `$")
    text = text.split(", got ")[0].replace("Expected `", "must be ").replace("`", "")
    if where.startswith("["):
        text += f" (item {int(where[1:].split(']')[0]) + 1})"
    return text


Port = Annotated[int, Meta(ge=0, le=65535)]
# Names that end up in Kafka topic, group or member names.
KafkaName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]{0,100}$")]
Lease = Annotated[int, Meta(ge=15, le=3600)]
RetryDelays = tuple[Annotated[float, Meta(gt=0, le=7 * 24 * 3600)], ...]
# Read in any case: LOG_LEVEL=info and LOG_FORMAT=JSON are meant.
_NORMALIZED = {"log_level": str.upper, "log_format": str.lower}


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str = "postgresql://sendpromptly@127.0.0.1:5433/sendpromptly"
    # Prepended to every topic and consumer-group name: lets tests (and several stacks on one
    # broker) run side by side without seeing each other's messages.
    topic_prefix: KafkaName = ""
    flow_partitions: Annotated[int, Meta(ge=1, le=1024)] = 6
    # Replication of the topics the agents create (their state changelogs); 3 in production.
    replication_factor: Annotated[int, Meta(ge=1, le=16)] = 1
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    # Several gateway processes on one host may share the port (SO_REUSEPORT): the kernel spreads
    # connections over them, as a Service spreads them over replicas.
    http_reuse_port: bool = False
    agents_web_port: Port = 8081
    sink_metrics_port: Port = 8082
    agents_datadir: str = ".run/agents"
    agents_store: str = "rocksdb://"
    # What the agents' RocksDB stores may hold in memory (write buffers and block caches), in MiB,
    # for one worker even when it holds every flow partition.
    agents_rocksdb_memory_mb: Annotated[int, Meta(ge=16, le=1 << 20)] = 256
    # Static consumer-group membership for one agents worker (unique per worker, stable across its
    # restarts, e.g. the StatefulSet pod name): a restarted worker takes its partitions straight
    # back instead of waiting out the dead member's session. Empty: dynamic membership.
    agents_instance_id: KafkaName = ""
    # How long a closed flow (applied, or its incident resolved) is kept before the agents forget
    # it: its state, its changelog entry (a tombstone) and its read-model rows. Fractions of a day
    # are for tests; below one day a direct producer's duplicate older than the retention would
    # start a new cycle.
    flow_retention_days: Annotated[float, Meta(gt=0, le=3650)] = 35.0
    # Upper bound on how long the gateway waits for Kafka's acknowledgement before it answers 503.
    produce_timeout_ms: Annotated[int, Meta(ge=100, le=120_000)] = 5000
    allow_private_targets: bool = False
    # Keyrings (``kid:base64key,...``, see common/keyring.py): one for secrets we must be able
    # to recover (callback signing secrets), one for payload snapshots. Kept apart on purpose.
    secret_keys: str = ""
    snapshot_keys: str = ""
    # Delays before each retry of a repair callback (seconds; Svix's schedule, ~27 h in all):
    # one first attempt plus one per entry.
    callback_retry_schedule: RetryDelays = (5, 300, 1800, 7200, 18000, 36000, 36000)
    # How long a claimed repair callback is left to the process that claimed it: longer than an
    # attempt can take (10 s), since once it runs out an attempt still without outcome is taken
    # for interrupted and the next one is made.
    callback_lease_seconds: Lease = 60
    # Alerts: the SMTP server (smtp://user:pass@host:port[?starttls=1] or smtps://...; empty: email
    # alerts wait and retry), their sender, the console their links point to, and the delays
    # before each retry of a send that failed for a passing reason (~2 h in all).
    smtp_url: str = ""
    smtp_from: str = "SendPromptly <alerts@sendpromptly.invalid>"
    console_url: str = "http://127.0.0.1:8080"
    alert_retry_schedule: RetryDelays = (5, 30, 120, 600, 1800, 3600)
    # How long a claimed alert is left to the alerts-sink process that claimed it: longer than a
    # send can take (channels time out after 10 s), since once it runs out a send still without
    # outcome is taken for interrupted and the next one is made.
    alert_lease_seconds: Lease = 60
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "text" lines, or "json": one object per line with the request id, project and reference.
    log_format: Literal["text", "json"] = "text"

    @property
    def flow_retention(self) -> timedelta:
        return timedelta(days=self.flow_retention_days)

    def __post_init__(self) -> None:
        # Each field's rules are its type's: checked here, so settings made in code keep them too.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            try:
                msgspec.convert(value, _FIELD_TYPES[field.name])
            except msgspec.ValidationError as exc:
                raise ConfigError(f"{PREFIX}{field.name.upper()} {_reason(_FIELD_TYPES[field.name], exc)}, "
                                  f"got {value!r}") from None
        smtp = urlsplit(self.smtp_url)
        if self.smtp_url and (smtp.scheme not in ("smtp", "smtps") or not smtp.hostname):
            raise ConfigError(f"{PREFIX}SMTP_URL must look like smtp://user:pass@host:port or smtps://host:port")
        if urlsplit(self.console_url).scheme not in ("http", "https"):
            raise ConfigError(f"{PREFIX}CONSOLE_URL must be an http(s) URL (got {self.console_url!r})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each field from ``SENDPROMPTLY_<FIELD>`` (or ``..._FILE``); unset or empty: the default."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            raw = _raw(env, name)
            if raw is None or raw == "":
                continue
            value = _parsed(name, raw, _FIELD_TYPES[field.name])
            values[field.name] = _NORMALIZED[field.name](value) if field.name in _NORMALIZED else value
        return cls(**values)


_FIELD_TYPES: dict[str, Any] = get_type_hints(Settings, include_extras=True)
