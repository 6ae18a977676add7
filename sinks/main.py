"""Run one sink process: ``sendpromptly sink <name>``.

Each sink is one module with a ``build(pool, settings)`` that declares it (``sinks/contract.py``:
its handlers and loops); ``sendpromptly.processes`` lists them, and the ``sink`` command names the
module to ``run``. Only the module of the sink being run is imported, so a sink's process serves its
own metrics and no other sink's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import Callable

import uvloop

from common.config import Settings
from common.observability import configure_logging
from sinks.contract import Sink
from sinks.runner import SinkRunner, serve_health
from store.db import Pool, open_pool

Build = Callable[[Pool, Settings], Sink]


def _build(module: str) -> Build:
    build: Build = importlib.import_module(module).build
    return build


async def _run(settings: Settings, name: str, module: str) -> None:
    pool = await open_pool(settings.database_url, max_size=4)
    runner = SinkRunner(settings, name=name, sink=_build(module)(pool, settings))
    health = await serve_health(runner, settings.http_host, settings.sink_metrics_port)
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await health.cleanup()
        await pool.close()


def run(settings: Settings, name: str, module: str) -> None:
    """Run the sink ``name``, which ``module``'s ``build`` declares, until SIGTERM/SIGINT."""
    configure_logging(settings)
    uvloop.run(_run(settings, name, module))
