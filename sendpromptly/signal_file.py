"""A file of signals for ``sendpromptly send``: JSON Lines read and checked whole, then cut into
batch requests. Pure: no I/O beyond the lines given.

Each non-blank line is one endpoint's body with its own ``idempotency_key`` and, optionally,
``"kind": "receipt"|"result"`` (else the command's ``--kind``). Lines go out in file order: a batch
holds consecutive lines of one kind, up to the gateway's limits, so that a result never overtakes
the receipt before it in the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sendpromptly.client import (
    BATCH_MAX_BYTES,
    BATCH_MAX_ITEMS,
    KINDS,
    Document,
    Kind,
    batch_bytes,
    encode_json,
)


@dataclass(frozen=True)
class Signal:
    """One line of the file: its number (from 1), its endpoint, and its item as the batch sends it
    (``kind`` taken out), with its encoded bytes."""

    line: int
    kind: Kind
    item: Document
    encoded: bytes


@dataclass(frozen=True)
class Batch:
    kind: Kind
    signals: tuple[Signal, ...]

    @property
    def items(self) -> list[Document]:
        return [signal.item for signal in self.signals]

    @property
    def size(self) -> int:
        return batch_bytes([signal.encoded for signal in self.signals])


class FileRefused(ValueError):
    """The file cannot be sent as it is; ``problems`` say which lines and why, one each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def read_signals(lines: Iterable[bytes], default_kind: Kind | None, *,
                 max_bytes: int = BATCH_MAX_BYTES) -> list[Signal]:
    """Every signal of the file, or ``FileRefused`` naming every line that is not one: nothing of
    a file is sent unless all of it can be. Blank lines are skipped (they keep their numbers)."""
    signals: list[Signal] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            signals.append(_signal(number, raw, default_kind, max_bytes))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        raise FileRefused(problems)
    return signals


def _signal(number: int, raw: bytes, default_kind: Kind | None, max_bytes: int) -> Signal:
    try:
        doc = json.loads(raw, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except ValueError as exc:  # bytes that are not UTF-8, NaN or Infinity
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"must be a JSON object (one signal), got {type(doc).__name__}")
    item = dict(doc)
    key = item.get("idempotency_key")
    if not isinstance(key, str) or not key:
        # Never made up here: a key invented per run would make a re-run send the signal again.
        raise ValueError("has no idempotency_key; give every signal its own, and the same one each "
                         "time it is sent")
    kind = _kind(item.pop("kind", None), default_kind)
    encoded = encode_json(item)
    if batch_bytes([encoded]) > max_bytes:
        raise ValueError(f"is {len(encoded)} bytes as JSON; a batch request holds at most {max_bytes}")
    return Signal(number, kind, item, encoded)


def _kind(given: Any, default_kind: Kind | None) -> Kind:
    if given is None:
        if default_kind is None:
            raise ValueError('has no "kind"; add "kind": "receipt" or "result", or pass --kind')
        return default_kind
    for kind in KINDS:
        if given == kind:
            return kind
    raise ValueError(f'"kind" must be "receipt" or "result", got {json.dumps(given)}')


def _not_json(constant: str) -> None:
    # Python's json reads NaN and Infinity, which JSON has not: the gateway would refuse the batch.
    raise ValueError(f"{constant} is not a JSON value")


def plan_batches(signals: Sequence[Signal], *, max_items: int = BATCH_MAX_ITEMS,
                 max_bytes: int = BATCH_MAX_BYTES) -> list[Batch]:
    """The signals in order, cut into as few batches as file order allows: a new batch starts when
    the kind changes or the next signal would take the batch over ``max_items`` or ``max_bytes``
    (each signal fits alone: ``read_signals`` checked)."""
    batches: list[Batch] = []
    current: list[Signal] = []
    size = 0  # of the batch holding ``current``
    for signal in signals:
        grown = size + 1 + len(signal.encoded)  # a comma, then the signal
        if current and (signal.kind != current[0].kind or len(current) == max_items or grown > max_bytes):
            batches.append(Batch(current[0].kind, tuple(current)))
            current = []
        current.append(signal)
        size = grown if len(current) > 1 else batch_bytes([signal.encoded])
    if current:
        batches.append(Batch(current[0].kind, tuple(current)))
    return batches
