"""The table of faults x (refused, errors, lost, wrong, doubled, recovery): each anomaly, refused
request and error answer is placed in the window of the last fault injected before it happened
("before faults" for the warm-up)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from tests.chaos.client import OddAnswer
from tests.chaos.faults import FaultWindow
from tests.chaos.reconcile import Anomaly, Kind

BASELINE = FaultWindow("before faults", 0.0, 0.0)


@dataclass(frozen=True)
class Recovery:
    first_202: float | None  # seconds from the fault to the first 202 after it
    caught_up: float | None  # seconds from the fault until every consumer is < 2 s behind
    # detection lag (incident opened - deadline) of timeouts due during the fault, and after it
    detection_during: list[float]
    detection_after: list[float]


@dataclass(frozen=True)
class Row:
    window: FaultWindow
    refused: int
    errors: int
    counts: Counter[Kind]
    recovery: Recovery | None  # None for the baseline

    @property
    def clean(self) -> bool:
        return self.refused == 0 and self.errors == 0 and sum(self.counts.values()) == 0


def window_of(windows: list[FaultWindow], at: float) -> int:
    """Index into ``[BASELINE, *windows]``."""
    return sum(1 for w in windows if w.started_at <= at)


def build_rows(windows: list[FaultWindow], anomalies: list[Anomaly], refused_at: list[float],
               errors: list[OddAnswer], recoveries: list[Recovery]) -> list[Row]:
    all_windows = [BASELINE, *windows]
    counts: list[Counter[Kind]] = [Counter() for _ in all_windows]
    for anomaly in anomalies:
        counts[window_of(windows, anomaly.at)][anomaly.kind] += 1
    refused = Counter(window_of(windows, at) for at in refused_at)
    erred = Counter(window_of(windows, answer.at) for answer in errors)
    return [Row(window, refused[n], erred[n], counts[n], None if n == 0 else recoveries[n - 1])
            for n, window in enumerate(all_windows)]


def render(rows: list[Row], heading: str) -> str:
    header = ("fault", "refused", "errors", "lost", "wrong", "doubled", "first 202 s", "caught up s",
              "detect during p50/max s", "detect after p50/max s")
    lines = [tuple(header)]
    for row in rows:
        recovery = row.recovery
        lines.append((
            row.window.name + (f" [{row.window.note}]" if row.window.note else ""),
            str(row.refused), str(row.errors),
            *(str(row.counts[kind]) for kind in (Kind.LOST, Kind.WRONG, Kind.DOUBLED)),
            _seconds(recovery.first_202) if recovery else "",
            _seconds(recovery.caught_up) if recovery else "",
            _spread(recovery.detection_during) if recovery else "",
            _spread(recovery.detection_after) if recovery else "",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                for line in lines]
    rendered.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join([heading, *rendered])


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def _spread(lags: list[float]) -> str:
    if not lags:
        return "-"
    return f"{statistics.median(lags):.2f}/{max(lags):.2f} (n={len(lags)})"
