"""How each fault was recovered from: the first 202 after it, when every consumer was caught up
again, and how late the timeouts due during and after it were detected."""

from __future__ import annotations

import math

from tests.chaos.faults import FaultWindow
from tests.chaos.ground_truth import FlowRecord
from tests.chaos.lag import LagMonitor
from tests.chaos.observed import Observed, timestamp
from tests.chaos.report import Recovery


def measure_recoveries(windows: list[FaultWindow], records: list[FlowRecord], monitor: LagMonitor,
                       observed: Observed) -> list[Recovery]:
    accepted = sorted(d.accepted_at for r in records for d in (r.receipt, r.result, r.reprocess)
                      if d is not None and d.accepted_at is not None)
    detections = [(deadline, opened - deadline) for deadline, opened in _timeouts(observed)]
    recoveries = []
    for n, window in enumerate(windows):
        next_start = windows[n + 1].started_at if n + 1 < len(windows) else math.inf
        first_202 = next((t for t in accepted if t >= window.started_at), None)
        caught_up = monitor.caught_up_since(window.restored_at)
        recoveries.append(Recovery(
            first_202=None if first_202 is None else first_202 - window.started_at,
            caught_up=None if caught_up is None else caught_up - window.started_at,
            detection_during=[lag for due, lag in detections
                              if window.started_at <= due <= window.restored_at],
            detection_after=[lag for due, lag in detections if window.restored_at < due < next_start],
        ))
    return recoveries


def _timeouts(observed: Observed) -> list[tuple[float, float]]:
    """(deadline, opened_at) of every timeout incident."""
    found = []
    for incidents in observed.incidents.values():
        for incident in incidents:
            deadline, opened = timestamp(incident["deadline"]), timestamp(incident["opened_at"])
            if incident["reason"] == "timeout" and deadline is not None and opened is not None:
                found.append((deadline, opened))
    return found
