"""The agents' Kafka topics as faust topics: the inputs they read as one stream, the topics they write."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from agents.tracker import TrackerTopics
from topics import AUDIT, DEADLETTER, DEADLINES, INCIDENTS, RECEIPTS, RESULTS


@dataclass(frozen=True)
class AgentTopics:
    names: TrackerTopics
    # One stream over every co-partitioned input: a flow's receipts, results, operator actions and
    # due deadlines all arrive on the same partition number, in order, to the task that owns it.
    inputs: faust.TopicT
    audit: faust.TopicT
    incidents: faust.TopicT
    deadlines: faust.TopicT
    deadletter: faust.TopicT
    # A signal that came on the wrong partition goes back to its own topic, on the right one.
    forward_to: dict[str, faust.TopicT]


def declare_topics(app: faust.App, prefix: str) -> AgentTopics:
    """The agents' topics under ``prefix``; keys and values pass as bytes (``topics`` decodes them)."""

    def raw_topic(*topic_names: str) -> faust.TopicT:
        return app.topic(*topic_names, key_serializer="raw", value_serializer="raw")

    names = TrackerTopics(receipts=RECEIPTS.name(prefix), results=RESULTS.name(prefix),
                          incidents=INCIDENTS.name(prefix), deadlines=DEADLINES.name(prefix))
    return AgentTopics(
        names=names,
        inputs=raw_topic(names.receipts, names.results, names.incidents, names.deadlines),
        audit=raw_topic(AUDIT.name(prefix)),
        incidents=raw_topic(names.incidents),
        deadlines=raw_topic(names.deadlines),
        deadletter=raw_topic(DEADLETTER.name(prefix)),
        forward_to={name: raw_topic(name) for name in (names.receipts, names.results, names.incidents)},
    )
