"""What a sink declares, and all it declares: the topics it consumes with the handler of each, and
the background loops it runs beside them. ``sinks/runner.py`` does the rest: the consumer group,
retries and dead letters, starting and stopping the loops, and ``/readyz`` over all of them.

A sink module has one ``build(pool, settings) -> Sink``; ``sendpromptly.processes`` names the
module of each sink.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord

from topics import TopicSpec

Handler = Callable[[ConsumerRecord], Awaitable[None]]


@dataclass(frozen=True)
class Batched:
    """A topic's records handled a batch at a time: ``handle`` gets the records one fetch brought of
    one partition, in order, and writes what they say all at once or, raising, nothing (one
    transaction): a batch that fails for good is handed over again one record at a time."""

    handle: Callable[[Sequence[ConsumerRecord]], Awaitable[None]]


@dataclass(frozen=True)
class Loop:
    """A background loop of the sink: ``run`` goes on until it is cancelled, outlasting passing
    failures itself (``sinks/claim_loop.py``); if it ever ends, the runner ends the process."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Sink:
    handlers: Mapping[TopicSpec, Handler | Batched]
    loops: tuple[Loop, ...] = ()


class Unprocessable(Exception):
    """This record can never be handled (e.g. it names a project that does not exist)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
