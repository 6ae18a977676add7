"""The faults, one at a time: kill -9 and restart of each process of the stack, Kafka stopped for
20 s, PostgreSQL restarted. Each returns the window it opened, for the report to attribute what
went wrong and how long recovery took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from harness.processes import ManagedProcess
from harness.services import Services
from harness.stack import Stack
from tests.chaos.receiver import HoldingReceiver
from tests.support.faults import restart_postgres, start_kafka, stop_kafka

KAFKA_DOWN_SECONDS = 20.0
# How long to wait for the receiver to hold a callback open before killing the callbacks sink anyway.
OPEN_POST_TIMEOUT = 15.0
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class FaultWindow:
    name: str
    started_at: float  # the fault injected (wall clock)
    restored_at: float  # the process restarted and ready, or the service back
    note: str = ""


class FaultInjector:
    def __init__(self, stack: Stack, services: Services, receiver: HoldingReceiver):
        self._stack = stack
        self._services = services
        self._receiver = receiver

    def kinds(self) -> dict[str, Callable[[], Awaitable[FaultWindow]]]:
        """Every fault kind by name, in the order a run injects them: Kafka's long outage in the
        middle, so that steady load runs before and after it."""
        stack = self._stack
        return {
            "kill -9 gateway": lambda: self._kill_and_restart("kill -9 gateway", stack.gateway,
                                                              stack.base_url),
            "kill -9 agents": lambda: self._kill_and_restart("kill -9 agents", stack.agents,
                                                             stack.agents_url),
            "kill -9 sink callbacks (mid-POST)": self._kill_callbacks_mid_post,
            "kafka stopped 20 s": self._stop_kafka,
            "kill -9 sink read-model": lambda: self._kill_sink("read-model"),
            "kill -9 sink alerts": lambda: self._kill_sink("alerts"),
            "postgres restarted": self._restart_postgres,
            "kill -9 sink audit": lambda: self._kill_sink("audit"),
        }

    async def _kill_and_restart(self, name: str, process: ManagedProcess, base_url: str,
                                note: str = "") -> FaultWindow:
        started = time.time()
        await asyncio.to_thread(process.kill)
        process.start()
        await asyncio.to_thread(process.wait_ready, base_url + "/readyz", READY_TIMEOUT)
        return FaultWindow(name, started, time.time(), note)

    async def _kill_sink(self, sink: str) -> FaultWindow:
        return await self._kill_and_restart(f"kill -9 sink {sink}", self._stack.sinks[sink],
                                            self._stack.sink_urls[sink])

    async def _kill_callbacks_mid_post(self) -> FaultWindow:
        held = await self._receiver.wait_for_open_post(OPEN_POST_TIMEOUT)
        note = "killed holding a POST open" if held else "no POST was in flight"
        sink, url = self._stack.sinks["callbacks"], self._stack.sink_urls["callbacks"]
        return await self._kill_and_restart("kill -9 sink callbacks (mid-POST)", sink, url, note)

    async def _stop_kafka(self) -> FaultWindow:
        started = time.time()
        await stop_kafka(self._services)
        await asyncio.sleep(KAFKA_DOWN_SECONDS)
        await start_kafka(self._services)
        return FaultWindow("kafka stopped 20 s", started, time.time())

    async def _restart_postgres(self) -> FaultWindow:
        started = time.time()
        await restart_postgres(self._services)
        return FaultWindow("postgres restarted", started, time.time())


async def inject_all(injector: FaultInjector, *, first_at: float, spacing: float,
                     min_gap: float) -> list[FaultWindow]:
    """Each kind once, the n-th at ``first_at + n * spacing`` (wall clock), but never sooner than
    ``min_gap`` after the previous one was restored."""
    windows: list[FaultWindow] = []
    for n, inject in enumerate(injector.kinds().values()):
        not_before = first_at + n * spacing
        if windows:
            not_before = max(not_before, windows[-1].restored_at + min_gap)
        await asyncio.sleep(max(0.0, not_before - time.time()))
        windows.append(await inject())
    return windows
