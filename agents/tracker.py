"""The flow tracker: the thin adapter between Kafka messages and the state machine in ``agents.flow``.

It decodes and validates each receipt or result, loads the flow's state, runs one step of the
state machine and returns what to store and what to publish. Anything it cannot use becomes a
dead letter with a reason instead of an exception, so one bad message never stalls a partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents import flow as machine
from agents.outputs import to_message
from agents.projects import ProjectDirectory
from topics import AuditEvent, DeadLetter, IncidentEvent, Receipt, Result, SchemaError, decode, flow_key


@dataclass(frozen=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Outcome:
    """What one message led to: the new state to store (None: leave it), and messages to publish."""

    state: dict[str, Any] | None
    messages: list[AuditEvent | IncidentEvent]
    dead_letter: DeadLetter | None = None


class FlowTracker:
    CONSUMER = "agents.flow_tracker"

    def __init__(self, *, receipts_topic: str, results_topic: str, projects: ProjectDirectory,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._receipts_topic = receipts_topic
        self._results_topic = results_topic
        self._projects = projects
        self._clock = clock

    async def handle(self, message: Incoming, stored: dict[str, Any] | None) -> Outcome:
        now = self._clock()
        try:
            signal = self._decode(message)
        except SchemaError as exc:
            return self._dead(message, f"{exc.reason}: {exc.detail}", now)
        if message.key != flow_key(signal.project_id, signal.reference):
            # A mis-keyed message sits on the wrong partition for its flow; joining it there
            # would split one flow's state across two tasks.
            return self._dead(message, "key_mismatch: key must be '<project_id>:<reference>' of the value", now)
        project = await self._projects.get(signal.project_id)
        if project is None:
            return self._dead(message, f"unknown_project: {signal.project_id} does not exist", now)

        state = machine.state_from_json(stored)
        if isinstance(signal, Receipt):
            step = machine.on_receipt(
                state, signal, mode=signal.mode or project.mode,
                project_timeout_minutes=project.timeout_minutes, now=now,
            )
        else:
            step = machine.on_result(state, signal, now=now)
        if step.state == state:
            return Outcome(state=None, messages=[])
        return Outcome(state=machine.state_to_json(step.state), messages=[to_message(e) for e in step.effects])

    def _decode(self, message: Incoming) -> Receipt | Result:
        if message.topic == self._receipts_topic:
            return decode(Receipt, message.value)
        if message.topic == self._results_topic:
            return decode(Result, message.value)
        raise SchemaError("unexpected_topic", f"the tracker does not read {message.topic}")

    def _dead(self, message: Incoming, reason: str, now: datetime) -> Outcome:
        letter = DeadLetter.of(
            topic=message.topic, partition=message.partition, offset=message.offset, key=message.key,
            value=message.value, reason=reason, consumer=self.CONSUMER, failed_at=now,
        )
        return Outcome(state=None, messages=[], dead_letter=letter)
