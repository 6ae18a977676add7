"""Run one sink process: ``sendpromptly sink <name>``."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import uvloop

from sendpromptly.config import Settings
from sendpromptly.observability import configure_logging
from sinks import read_model
from sinks.runner import SinkRunner, serve_health
from store.db import open_pool

SINK_NAMES = (read_model.NAME,)


async def _run(settings: Settings, name: str) -> None:
    pool = await open_pool(settings.database_url, max_size=4)
    sink = read_model.ReadModelSink(pool)
    runner = SinkRunner(settings, name=name, handlers=sink.handlers())
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


def run(settings: Settings, name: str) -> None:
    if name not in SINK_NAMES:
        raise SystemExit(f"unknown sink {name!r}; choose one of: {', '.join(SINK_NAMES)}")
    configure_logging(settings.log_level)
    uvloop.run(_run(settings, name))
