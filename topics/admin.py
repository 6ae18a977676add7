"""``sendpromptly topics ensure``: create missing topics and verify existing ones."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from topics.catalog import ALL_TOPICS, TopicSpec


class TopicMismatch(RuntimeError):
    """An existing topic differs from its definition in a way ``ensure`` must not paper over."""


@dataclass(frozen=True)
class EnsureReport:
    created: list[str]
    verified: list[str]
    updated_config: list[str]


def ensure_topics(bootstrap: str, prefix: str, flow_partitions: int, replication_factor: int = 1,
                  timeout_s: float = 30.0) -> EnsureReport:
    """Idempotent: creates what is missing, re-applies retention, and refuses to go on when a
    topic's partition count differs (receipts and results must stay co-partitioned)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})  # errors only: no shutdown chatter
    existing = admin.list_topics(timeout=timeout_s).topics
    wanted = {spec.name(prefix): spec for spec in ALL_TOPICS}
    report = EnsureReport(created=[], verified=[], updated_config=[])

    missing = [
        NewTopic(name, spec.partitions(flow_partitions), replication_factor, config=spec.config())
        for name, spec in wanted.items()
        if name not in existing
    ]
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
            try:
                future.result()
                report.created.append(name)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent ensure won the race
                    raise
                report.verified.append(name)

    for name, spec in wanted.items():
        if name in report.created:
            continue
        _verify_partitions(admin, name, spec, flow_partitions, timeout_s)
        if name not in report.verified:
            report.verified.append(name)
        if _align_config(admin, name, spec, timeout_s):
            report.updated_config.append(name)
    return report


def _verify_partitions(admin: AdminClient, name: str, spec: TopicSpec, flow_partitions: int,
                       timeout_s: float) -> None:
    actual = len(admin.list_topics(name, timeout=timeout_s).topics[name].partitions)
    expected = spec.partitions(flow_partitions)
    if actual != expected:
        raise TopicMismatch(
            f"topic {name} has {actual} partitions but its definition wants {expected}; "
            "receipts, results and incidents must be co-partitioned. Set SENDPROMPTLY_FLOW_PARTITIONS "
            "to the existing count, or repartition all flow topics together."
        )


def _align_config(admin: AdminClient, name: str, spec: TopicSpec, timeout_s: float) -> bool:
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    current = admin.describe_configs([resource])[resource].result(timeout=timeout_s)
    wanted = spec.config()
    if all(current[key].value == value for key, value in wanted.items()):
        return False
    # Incremental, so settings an operator added by hand (e.g. segment.bytes) survive.
    entries = [ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
               for key, value in wanted.items()]
    change = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
    for future in admin.incremental_alter_configs([change]).values():
        future.result(timeout=timeout_s)
    return True


def delete_topics(bootstrap: str, prefix: str, timeout_s: float = 30.0) -> None:
    """Delete every topic of the stack under ``prefix`` (tests and throw-away stacks only)."""
    if not prefix:
        raise ValueError("refusing to delete the unprefixed production topics")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [name for name in admin.list_topics(timeout=timeout_s).topics if name.startswith(prefix)]
    for future in admin.delete_topics(names, operation_timeout=timeout_s).values() if names else ():
        future.result()
