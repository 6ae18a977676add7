"""One frozen settings object per process, read from ``SENDPROMPTLY_*`` environment variables.

Every variable is documented in ``docs/configuration.md``; ``Settings.from_env`` validates them at
start so a typo fails the process before it serves anything. A secret may be given as
``SENDPROMPTLY_<NAME>_FILE`` (a path) instead of the value itself, as container platforms mount them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "SENDPROMPTLY_"
_KAFKA_NAME_RE = re.compile(r"[A-Za-z0-9._-]{0,100}")


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


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(env, name)
    return default if value is None or value == "" else value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _raw(env, name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{PREFIX}{name} must be between {low} and {high}, got {number}")
    return number


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    value = _raw(env, name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number, got {value!r}") from None
    if not low < number <= high:
        raise ConfigError(f"{PREFIX}{name} must be more than {low:g} and at most {high:g}, got {number:g}")
    return number


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(env, name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{PREFIX}{name} must be 1/0, true/false, yes/no or on/off, got {value!r}")


def _seconds_list(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    value = _raw(env, name)
    if value is None or value == "":
        return default
    try:
        numbers = tuple(float(item) for item in value.split(","))
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be comma-separated seconds, got {value!r}") from None
    if not all(0 < number <= 7 * 24 * 3600 for number in numbers):
        raise ConfigError(f"{PREFIX}{name}: each delay must be more than 0 and at most 7 days, got {value!r}")
    return numbers


def _check_kafka_name(name: str, value: str) -> None:
    """Names that end up in Kafka topic, group or member names."""
    if not _KAFKA_NAME_RE.fullmatch(value):
        raise ConfigError(f"{PREFIX}{name} may hold only A-Z a-z 0-9 . _ - (got {value!r})")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str = "postgresql://sendpromptly@127.0.0.1:5433/sendpromptly"
    # Prepended to every topic and consumer-group name: lets tests (and several stacks on one
    # broker) run side by side without seeing each other's messages.
    topic_prefix: str = ""
    flow_partitions: int = 6
    # Replication of the topics the agents create (their state changelogs); 3 in production.
    replication_factor: int = 1
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Several gateway processes on one host may share the port (SO_REUSEPORT): the kernel spreads
    # connections over them, as a Service spreads them over replicas.
    http_reuse_port: bool = False
    agents_web_port: int = 8081
    sink_metrics_port: int = 8082
    agents_datadir: str = ".run/agents"
    agents_store: str = "rocksdb://"
    # What the agents' RocksDB stores may hold in memory (write buffers and block caches), in MiB,
    # for one worker even when it holds every flow partition.
    agents_rocksdb_memory_mb: int = 256
    # Static consumer-group membership for one agents worker (unique per worker, stable across its
    # restarts, e.g. the StatefulSet pod name): a restarted worker takes its partitions straight
    # back instead of waiting out the dead member's session. Empty: dynamic membership.
    agents_instance_id: str = ""
    # How long a closed flow (applied, or its incident resolved) is kept before the agents forget
    # it: its state, its changelog entry (a tombstone) and its read-model rows. Fractions of a day
    # are for tests; below one day a direct producer's duplicate older than the retention would
    # start a new cycle.
    flow_retention_days: float = 35.0
    # Upper bound on how long the gateway waits for Kafka's acknowledgement before it answers 503.
    produce_timeout_ms: int = 5000
    allow_private_targets: bool = False
    # Keyrings (``kid:base64key,...``, see sendpromptly/keyring.py): one for secrets we must be able
    # to recover (callback signing secrets), one for payload snapshots. Kept apart on purpose.
    secret_keys: str = ""
    snapshot_keys: str = ""
    # Delays before each retry of a repair callback (seconds; Svix's schedule, ~27 h in all):
    # one first attempt plus one per entry.
    callback_retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    # How long a claimed repair callback is left to the process that claimed it: longer than an
    # attempt can take (10 s), since once it runs out an attempt still without outcome is taken
    # for interrupted and the next one is made.
    callback_lease_seconds: int = 60
    # Alerts: the SMTP server (smtp://user:pass@host:port[?starttls=1] or smtps://...; empty: email
    # alerts wait and retry), their sender, the console their links point to, and the delays
    # before each retry of a send that failed for a passing reason (~2 h in all).
    smtp_url: str = ""
    smtp_from: str = "SendPromptly <alerts@sendpromptly.invalid>"
    console_url: str = "http://127.0.0.1:8080"
    alert_retry_schedule: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600)
    # How long a claimed alert is left to the alerts-sink process that claimed it: longer than a
    # send can take (channels time out after 10 s), since once it runs out a send still without
    # outcome is taken for interrupted and the next one is made.
    alert_lease_seconds: int = 60
    log_level: str = "INFO"
    # "text" lines, or "json": one object per line with the request id, project and reference.
    log_format: str = "text"

    @property
    def flow_retention(self) -> timedelta:
        return timedelta(days=self.flow_retention_days)

    def __post_init__(self) -> None:
        _check_kafka_name("TOPIC_PREFIX", self.topic_prefix)
        _check_kafka_name("AGENTS_INSTANCE_ID", self.agents_instance_id)
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR "
                              f"(got {self.log_level!r})")
        if self.log_format not in {"text", "json"}:
            raise ConfigError(f"{PREFIX}LOG_FORMAT must be text or json (got {self.log_format!r})")
        smtp = urlsplit(self.smtp_url)
        if self.smtp_url and (smtp.scheme not in ("smtp", "smtps") or not smtp.hostname):
            raise ConfigError(f"{PREFIX}SMTP_URL must look like smtp://user:pass@host:port or smtps://host:port")
        if urlsplit(self.console_url).scheme not in ("http", "https"):
            raise ConfigError(f"{PREFIX}CONSOLE_URL must be an http(s) URL (got {self.console_url!r})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            kafka_bootstrap=_str(env, "KAFKA_BOOTSTRAP", defaults.kafka_bootstrap),
            database_url=_str(env, "DATABASE_URL", defaults.database_url),
            topic_prefix=_str(env, "TOPIC_PREFIX", defaults.topic_prefix),
            flow_partitions=_int(env, "FLOW_PARTITIONS", defaults.flow_partitions, 1, 1024),
            replication_factor=_int(env, "REPLICATION_FACTOR", defaults.replication_factor, 1, 16),
            http_host=_str(env, "HTTP_HOST", defaults.http_host),
            http_port=_int(env, "HTTP_PORT", defaults.http_port, 0, 65535),
            http_reuse_port=_bool(env, "HTTP_REUSE_PORT", defaults.http_reuse_port),
            agents_web_port=_int(env, "AGENTS_WEB_PORT", defaults.agents_web_port, 0, 65535),
            sink_metrics_port=_int(env, "SINK_METRICS_PORT", defaults.sink_metrics_port, 0, 65535),
            agents_datadir=_str(env, "AGENTS_DATADIR", defaults.agents_datadir),
            agents_store=_str(env, "AGENTS_STORE", defaults.agents_store),
            agents_rocksdb_memory_mb=_int(env, "AGENTS_ROCKSDB_MEMORY_MB", defaults.agents_rocksdb_memory_mb,
                                          16, 1 << 20),
            agents_instance_id=_str(env, "AGENTS_INSTANCE_ID", defaults.agents_instance_id),
            flow_retention_days=_float(env, "FLOW_RETENTION_DAYS", defaults.flow_retention_days, 0, 3650),
            produce_timeout_ms=_int(env, "PRODUCE_TIMEOUT_MS", defaults.produce_timeout_ms, 100, 120_000),
            allow_private_targets=_bool(env, "ALLOW_PRIVATE_TARGETS", defaults.allow_private_targets),
            secret_keys=_str(env, "SECRET_KEYS", defaults.secret_keys),
            snapshot_keys=_str(env, "SNAPSHOT_KEYS", defaults.snapshot_keys),
            callback_retry_schedule=_seconds_list(env, "CALLBACK_RETRY_SCHEDULE",
                                                  defaults.callback_retry_schedule),
            callback_lease_seconds=_int(env, "CALLBACK_LEASE_SECONDS", defaults.callback_lease_seconds,
                                        15, 3600),
            smtp_url=_str(env, "SMTP_URL", defaults.smtp_url),
            smtp_from=_str(env, "SMTP_FROM", defaults.smtp_from),
            console_url=_str(env, "CONSOLE_URL", defaults.console_url),
            alert_retry_schedule=_seconds_list(env, "ALERT_RETRY_SCHEDULE", defaults.alert_retry_schedule),
            alert_lease_seconds=_int(env, "ALERT_LEASE_SECONDS", defaults.alert_lease_seconds, 15, 3600),
            log_level=_str(env, "LOG_LEVEL", defaults.log_level).upper(),
            log_format=_str(env, "LOG_FORMAT", defaults.log_format).lower(),
        )
