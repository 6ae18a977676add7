"""Finding the benchmarked processes and the CPU time they use, from /proc (Linux).

CPU time per request is the figure that holds on a shared machine: requests per second move with
whatever else runs on the cores, the CPU one request costs the gateway much less.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces; everything after its closing parenthesis splits.
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # exited while we looked
    return found


def child_pids(command_fragment: str) -> list[int]:
    """The pids of this process's children whose command line holds ``command_fragment``."""
    found = []
    for pid in _children(os.getpid()):
        try:
            cmdline = ((Path("/proc") / str(pid) / "cmdline").read_bytes()
                       .replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
        if command_fragment in cmdline:
            found.append(pid)
    return found


def child_pid(command_fragment: str) -> int:
    """The pid of this process's child whose command line holds ``command_fragment``."""
    found = child_pids(command_fragment)
    if not found:
        raise LookupError(f"no child process runs {command_fragment!r}")
    return found[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = _stat_fields(current)
        except OSError:
            continue
        # utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
        total += (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND
        pending += _children(current)
    return total


def service_cpu_seconds() -> dict[str, float]:
    """CPU time so far of the services the gateway leans on: the Kafka broker (a JVM running
    ``kafka.Kafka``) and every PostgreSQL process. Processes that exited meanwhile are not counted,
    so compare two readings taken around a run of long-lived processes."""
    totals = {"kafka": 0.0, "postgres": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            if name == "postgres":
                service: str | None = "postgres"
            elif name == "java" and b"kafka.Kafka" in (entry / "cmdline").read_bytes():
                service = "kafka"
            else:
                service = None
            if service is not None:
                fields = _stat_fields(int(entry.name))
                totals[service] += (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
    return totals


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used since boot (busy time of /proc/stat: user,
    nice, system, irq, softirq, steal), to count what Kafka, PostgreSQL and the load generator
    spend on a request too."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_SECOND
