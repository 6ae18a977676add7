"""Run one sink process: ``sendpromptly sink <name>``.

Each sink is one module with a ``NAME`` and a ``build(pool, settings)`` that returns its handlers
(one per topic); ``SINKS`` lists them all. Adding a sink is one line here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import uvloop

from sendpromptly.config import Settings
from sendpromptly.observability import configure_logging
from sinks import alerts, audit_log, callbacks, read_model
from sinks.runner import Handler, SinkRunner, serve_health
from store.db import Pool, open_pool
from topics import TopicSpec

Build = Callable[[Pool, Settings], dict[TopicSpec, Handler]]

SINKS: dict[str, Build] = {
    read_model.NAME: read_model.build,
    callbacks.NAME: callbacks.build,
    alerts.NAME: alerts.build,
    audit_log.NAME: audit_log.build,
}


async def _run(settings: Settings, name: str) -> None:
    pool = await open_pool(settings.database_url, max_size=4)
    runner = SinkRunner(settings, name=name, handlers=SINKS[name](pool, settings))
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
    if name not in SINKS:
        raise SystemExit(f"unknown sink {name!r}; choose one of: {', '.join(SINKS)}")
    configure_logging(settings.log_level)
    uvloop.run(_run(settings, name))
