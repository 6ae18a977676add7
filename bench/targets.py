"""Every throughput target side by side, from one sitting: the ingest benchmark (with its floors)
and the pipeline benchmark (which measures the agents standalone, and an empty faust agent, first).

    .venv/bin/python -m bench.targets [--runs 3]

Each run prints one line per target with the figure and the goal; the spread over the runs comes
last. The figures are the benchmarks' own (``bench/ingest.py``, ``bench/pipeline.py``); this only
runs them one after the other and reads their JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    figure: Callable[[dict[str, Any]], float | None]
    met: Callable[[float], bool]


def _at(path: str) -> Callable[[dict[str, Any]], float | None]:
    """The figure at ``path`` (dotted keys) of the combined report, or None where it is missing."""
    def figure(report: dict[str, Any]) -> float | None:
        value: Any = report
        for part in path.split("."):
            value = None if value is None else value.get(part)
        return value
    return figure


TARGETS = (
    Target("gateway single requests / idempotency claim + Kafka ack floor", ">= 0.75",
           _at("ingest.gateway_vs_claim_ack_floor"), lambda v: v >= 0.75),
    Target("gateway p99 at half of its peak (ms)", "<= 25",
           _at("ingest.at_half_peak.gateway.p99_ms"), lambda v: v <= 25),
    Target("batch of 100 signals/s / single-request signals/s", ">= 10",
           _at("ingest.batch.vs_single_signals_per_s"), lambda v: v >= 10),
    Target("batch floor (claim + ack of 100) / single-request signals/s", "(the floor of the above)",
           _at("ingest.batch.floor.vs_single_signals_per_s"), lambda v: True),
    Target("agents / empty faust agent", ">= 0.5",
           _at("pipeline.agents_standalone.agents_of_floor"), lambda v: v >= 0.5),
    Target("whole pipeline sustained / agents standalone", ">= 0.8",
           _at("pipeline.ratio_to_agents_standalone"), lambda v: v >= 0.8),
)


def _run(module: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, check=True,
                          text=True)
    # bench.ingest may print a profile summary after its JSON; the JSON is the first document.
    report, _ = json.JSONDecoder().raw_decode(done.stdout.strip())
    return dict(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--ingest-duration", type=int, default=10)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {target.name: [] for target in TARGETS}
    for run in range(1, args.runs + 1):
        report = {
            "ingest": _run("bench.ingest", "--floors", "--duration", str(args.ingest_duration),
                           "--latency-seconds", str(args.ingest_duration)),
            "pipeline": _run("bench.pipeline"),
        }
        print(f"run {run}:")
        for target in TARGETS:
            value = target.figure(report)
            if value is not None:
                figures[target.name].append(value)
            verdict = "-" if value is None else ("met" if target.met(value) else "missed")
            print(f"  {target.name}: {value} (target {target.goal}: {verdict})", flush=True)
    print("spread over the runs:")
    for target in TARGETS:
        values = figures[target.name]
        spread = f"{min(values):g}-{max(values):g}" if values else "not measured"
        print(f"  {target.name}: {spread} (target {target.goal})")


if __name__ == "__main__":
    main()
