"""The agents' flow table while flows pass through it: closed flows forgotten after a short
retention (issue #11) against never forgotten (before it). No broker and no database.

    .venv/bin/python -m bench.retention [--flows 5000000] [--retention-seconds 120] [--step-ms 1]
        [--close-after-seconds 1] [--checkpoints 10] [--dir /tmp]

Each variant runs in its own process, one after the other (RSS is then the variant's own): the
real ``FlowTracker`` (simulated clock, one project) over real RocksDB stores opened as faust opens
them for ``rocksdb://`` (rocksdict, one store per partition, the agents' memory options), keys as
bytes and values in faust's JSON codec. Flow n is a receipt at n x --step-ms on the simulated clock
and its succeeded result --close-after-seconds later; both are encoded ``topics`` messages at
increasing offsets of their flow's partition. The retention variant runs the sweep of the agents'
``forget_closed_flows`` timer at the timer's interval (a 24th of the retention, within 1 s..1 h):
every stored document read, ``stored.forgettable`` asked, forget batches of up to 500 keys per
partition fed back through the tracker, keys deleted where it says so. The keep variant never
sweeps.

At each of --checkpoints checkpoints, per variant: live keys (the records a compacted changelog
holds), the store directory's disk use after a flush (du), VmRSS, and the recovery read: every
stored document through ``stored.pending_deadline`` into a ``DeadlineIndex``, as ``rebuild_index``
does after a rebalance. Then the retention variant's figures as ratios of the keep variant's, the
mean stored document, the deadline index's bytes per pending flow and the sweep's cost. Progress
goes to stderr, the figures to stdout as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, cast

from faust.serializers import codecs
from faust.stores.rocksdb import RocksDBOptions

from agents import stored
from agents.app import FLOW_TABLE, store_options
from agents.deadline_timer import partition_in, sweep_seconds
from agents.deadlines import DeadlineIndex
from agents.projects import ProjectDirectory
from agents.tracker import FlowTracker, Incoming, TrackerTopics, partition_of
from common.config import Settings
from common.ids import derived_id
from store.projects import Project
from topics import DeadlineBatch, Receipt, Result, encode, flow_key
from topics.fields import Mode, ResultStatus
from topics.messages import DeadlineAction

SETTINGS = Settings()  # the defaults: partitions and the RocksDB memory budget
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPICS = TrackerTopics(receipts="receipts", results="results", incidents="incidents", deadlines="deadlines")
PROJECT = Project(id=derived_id("prj", "bench-retention"), name="bench", mode=Mode.LIVE, timeout_minutes=30,
                  snapshots_enabled=False, repair_callback_url=None, created_at=T0)
VARIANTS = ("retention", "keep")
# Compared at each checkpoint, retention / keep; stderr gets them as markdown table rows.
RATIO_FIELDS = ("live_keys", "disk_mib", "vmrss_mib", "recovery_read_s")


class OneProject:
    """The project directory's one method, answering for PROJECT without a database."""

    async def get(self, project_id: str) -> Project | None:
        return PROJECT if project_id == PROJECT.id else None


class FlowTable:
    """The agents' table as faust keeps it with ``rocksdb://``: a RocksDB per partition, opened by
    faust's own options class with the agents' options; the value codec is faust's JSON."""

    def __init__(self, directory: Path, partitions: int) -> None:
        options = RocksDBOptions(**(store_options(SETTINGS) or {}), use_rocksdict=True)
        self.directory = directory
        self._dbs = [options.open(directory / f"{FLOW_TABLE}-{p}.db") for p in range(partitions)]

    def get(self, partition: int, key: bytes) -> stored.Document | None:
        # faust reads a key in the store of the partition the current message came on.
        raw = self._dbs[partition].get(key)
        return None if raw is None else cast(stored.Document, codecs.loads("json", raw))

    def put(self, partition: int, key: bytes, doc: stored.Document) -> None:
        self._dbs[partition].put(key, codecs.dumps("json", doc))

    def delete(self, partition: int, key: bytes) -> None:
        self._dbs[partition].delete(key)

    def items(self) -> Iterator[tuple[bytes, stored.Document]]:
        """Every stored document, partition after partition, as ``Table.items()`` reads them."""
        for db in self._dbs:
            for key, raw in db.items():
                yield key, cast(stored.Document, codecs.loads("json", raw))

    def mean_value_bytes(self) -> float:
        sizes = [len(raw) for db in self._dbs for raw in db.values()]
        return sum(sizes) / max(1, len(sizes))

    def disk_bytes(self) -> int:
        """What ``du`` counts for the stores once their memtables are flushed to SST files."""
        for db in self._dbs:
            db.flush()
        return sum(path.stat().st_blocks * 512 for path in self.directory.rglob("*") if path.is_file())

    def close(self) -> None:
        for db in self._dbs:
            db.close()


def sweep_interval(retention: timedelta) -> timedelta:
    """The agents' ``forget_closed_flows`` timer interval for ``retention``."""
    return timedelta(seconds=sweep_seconds(retention))


@dataclass
class Checkpoint:
    flows: int
    simulated_s: float
    live_keys: int
    pending_flows: int
    disk_mib: float
    vmrss_mib: float
    vmhwm_mib: float
    recovery_read_s: float
    forgotten: int
    swept_docs: int
    sweep_s: float
    flows_s: float  # wall seconds spent on the flows' own messages so far


def memory_mib(field: str) -> float:
    """``field`` (VmRSS, VmHWM) of this process's /proc status, in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return round(int(fields[field].split()[0]) / 1024, 1)


def recovery_read(table: FlowTable) -> tuple[float, int, int]:
    """What a worker reads after a rebalance (``rebuild_index``): seconds, documents, pending flows."""
    index = DeadlineIndex()
    started = time.perf_counter()
    docs = 0
    for key, doc in table.items():
        docs += 1
        deadline = stored.pending_deadline(doc)
        if deadline is not None:
            index.track(key, deadline, partition_in(key, doc, SETTINGS.flow_partitions))
    return time.perf_counter() - started, docs, len(index)


class Driver:
    """One variant's run: the flows' messages, the sweeps and the checkpoints."""

    def __init__(self, table: FlowTable, retention: timedelta) -> None:
        self.table = table
        self.retention = retention
        self.now = T0
        self.tracker = FlowTracker(topics=TOPICS, projects=cast(ProjectDirectory, OneProject()),
                                   partitions=SETTINGS.flow_partitions, retention=retention,
                                   clock=lambda: self.now)
        self._next_offset: dict[tuple[str, int], int] = {}
        self.forgotten = self.swept_docs = 0
        self.sweep_s = self.flows_s = 0.0  # wall seconds in sweeps, and in the flows' own messages

    def incoming(self, topic: str, partition: int, key: bytes | None, value: bytes) -> Incoming:
        offset = self._next_offset.get((topic, partition), 0)
        self._next_offset[topic, partition] = offset + 1
        return Incoming(topic=topic, partition=partition, offset=offset, key=key, value=value)

    async def feed(self, message: Incoming) -> None:
        """Handle ``message`` and apply its outcomes to the table, as the agent does."""
        load = partial(self.table.get, message.partition)
        for key, outcome in await self.tracker.handle(message, load):
            if key is None:
                continue
            if outcome.forget:
                self.table.delete(message.partition, key)
                self.forgotten += 1
            elif outcome.state is not None:
                self.table.put(message.partition, key, outcome.state)

    async def signal(self, n: int, kind: type[Receipt] | type[Result]) -> None:
        """Flow n's receipt, or its succeeded result, received now on its partition."""
        reference = f"inv_{n:010d}"
        key = flow_key(PROJECT.id, reference)
        value: Receipt | Result
        if kind is Receipt:
            value = Receipt(project_id=PROJECT.id, idempotency_key=f"r-{reference}", reference=reference,
                            event_type="invoice.paid", effect_type="grant_access", received_at=self.now)
            topic = TOPICS.receipts
        else:
            value = Result(project_id=PROJECT.id, idempotency_key=f"s-{reference}", reference=reference,
                           status=ResultStatus.SUCCEEDED, received_at=self.now)
            topic = TOPICS.results
        partition = partition_of(key, SETTINGS.flow_partitions)
        await self.feed(self.incoming(topic, partition, key, encode(value)))

    async def sweep(self) -> None:
        """``forget_closed_flows``: name every stored flow closed longer than the retention in
        forget batches on its partition; then the agent handles them (here at once, on the same
        simulated instant)."""
        started = time.perf_counter()
        due: dict[int, list[bytes]] = {}
        batches: list[tuple[int, tuple[bytes, ...]]] = []
        for key, doc in self.table.items():
            self.swept_docs += 1
            if stored.forgettable(doc, retention=self.retention, now=self.now):
                partition = partition_in(key, doc, SETTINGS.flow_partitions)
                keys = due.setdefault(partition, [])
                keys.append(key)
                if len(keys) == DeadlineBatch.MAX_KEYS:
                    batches.append((partition, tuple(keys)))
                    keys.clear()
        batches += [(partition, tuple(keys)) for partition, keys in due.items() if keys]
        for partition, names in batches:
            value = encode(DeadlineBatch.of(names, action=DeadlineAction.FORGET))
            await self.feed(self.incoming(TOPICS.deadlines, partition, None, value))
        self.sweep_s += time.perf_counter() - started


async def run_variant(variant: str, args: argparse.Namespace) -> None:
    """Print one JSON line per checkpoint of ``variant`` to stdout, then the mean stored document."""
    retention = timedelta(seconds=args.retention_seconds)
    step = timedelta(milliseconds=args.step_ms)
    close_after = round(args.close_after_seconds * 1000 / args.step_ms)  # in flows
    every = max(1, args.flows // args.checkpoints)
    interval = sweep_interval(retention)
    with TemporaryDirectory(prefix=f"sp-retention-{variant}-", dir=args.dir) as tmp:
        table = FlowTable(Path(tmp), SETTINGS.flow_partitions)
        driver = Driver(table, retention)
        next_sweep = T0 + interval
        for n in range(args.flows):
            started = time.perf_counter()
            driver.now = T0 + n * step
            await driver.signal(n, Receipt)
            if n >= close_after:
                await driver.signal(n - close_after, Result)
            driver.flows_s += time.perf_counter() - started
            if variant == "retention" and driver.now >= next_sweep:
                await driver.sweep()
                next_sweep += interval
            if (n + 1) % every == 0:
                point = checkpoint(driver, n + 1)
                print(json.dumps(asdict(point)), flush=True)
                print(f"retention bench [{variant}]: {point}", file=sys.stderr, flush=True)
        print(json.dumps({"mean_document_bytes": round(table.mean_value_bytes())}), flush=True)
        table.close()


def checkpoint(driver: Driver, flows: int) -> Checkpoint:
    disk = driver.table.disk_bytes()
    read_s, live, pending = recovery_read(driver.table)
    return Checkpoint(flows=flows, simulated_s=(driver.now - T0).total_seconds(), live_keys=live,
                      pending_flows=pending, disk_mib=round(disk / 2**20, 1), vmrss_mib=memory_mib("VmRSS"),
                      vmhwm_mib=memory_mib("VmHWM"), recovery_read_s=round(read_s, 2),
                      forgotten=driver.forgotten, swept_docs=driver.swept_docs,
                      sweep_s=round(driver.sweep_s, 1), flows_s=round(driver.flows_s, 1))


def index_bytes_per_entry(entries: int = 200_000) -> float:
    """Python heap held by a ``DeadlineIndex`` per pending flow, keys included (the index owns
    them after a rebuild)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = DeadlineIndex()
    for n in range(entries):
        index.track(flow_key(PROJECT.id, f"inv_{n:010d}"), T0 + timedelta(milliseconds=n), n % 6)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / len(index)


def run_child(variant: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """The variant in its own process: its checkpoints, its closing figures, its wall seconds."""
    started = time.monotonic()
    command = [sys.executable, "-m", "bench.retention", "--variant", variant, "--flows", str(args.flows),
               "--retention-seconds", str(args.retention_seconds), "--step-ms", str(args.step_ms),
               "--close-after-seconds", str(args.close_after_seconds), "--checkpoints", str(args.checkpoints)]
    if args.dir:
        command += ["--dir", args.dir]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return lines[:-1], lines[-1], time.monotonic() - started


def ratio(ours: float, base: float) -> float | None:
    return round(ours / base, 3) if base else None


def compare(args: argparse.Namespace) -> dict[str, Any]:
    runs = {variant: run_child(variant, args) for variant in VARIANTS}
    (forgetting, _, forgetting_s), (keeping, closing, keeping_s) = runs["retention"], runs["keep"]
    rows = []
    for ours, base in zip(forgetting, keeping, strict=True):
        ratios = {field: ratio(ours[field], base[field]) for field in RATIO_FIELDS}
        rows.append({"flows": ours["flows"], "retention": ours, "keep": base, "ratios": ratios})
        cells = [f"{ours[field]} / {base[field]} ({ratios[field]})" for field in RATIO_FIELDS]
        print(f"| {ours['flows']:,} | " + " | ".join(cells) + " |", file=sys.stderr)
    last, last_keep = forgetting[-1], keeping[-1]
    retention = timedelta(seconds=args.retention_seconds)
    return {
        "flows": args.flows, "retention_s": args.retention_seconds, "step_ms": args.step_ms,
        "close_after_s": args.close_after_seconds, "sweep_every_s": sweep_interval(retention).total_seconds(),
        "wall_s": {"retention": round(forgetting_s), "keep": round(keeping_s)},
        "checkpoints": rows,
        "mean_document_bytes": closing["mean_document_bytes"],
        "disk_bytes_per_live_key": {"retention": round(last["disk_mib"] * 2**20 / last["live_keys"]),
                                    "keep": round(last_keep["disk_mib"] * 2**20 / last_keep["live_keys"])},
        "recovery_read_docs_per_s": round(last_keep["live_keys"] / last_keep["recovery_read_s"]),
        "flow_us": round(last_keep["flows_s"] / last_keep["flows"] * 1e6),
        "sweep_us_per_doc": round(last["sweep_s"] / max(1, last["swept_docs"]) * 1e6, 1),
        "swept_docs_per_flow": round(last["swept_docs"] / last["flows"], 1),
        "deadline_index_bytes_per_pending_flow": round(index_bytes_per_entry()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=5_000_000)
    # Two simulated minutes: the live set levels off after ~121 000 flows, early in a run.
    parser.add_argument("--retention-seconds", type=float, default=120, help="simulated")
    parser.add_argument("--step-ms", type=float, default=1.0, help="simulated time between flows")
    parser.add_argument("--close-after-seconds", type=float, default=1.0,
                        help="simulated time from a flow's receipt to its result")
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--dir", help="where the RocksDB stores go (a temporary directory inside it)")
    parser.add_argument("--variant", choices=VARIANTS, help="run one variant in this process (internal)")
    args = parser.parse_args()
    if args.variant:
        asyncio.run(run_variant(args.variant, args))
    else:
        print(json.dumps(compare(args), indent=2))


if __name__ == "__main__":
    main()
