"""The shipped example repair receiver (``examples/repair_receiver.py``), run on loopback in a test."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "repair_receiver.py"


def load_example_receiver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("repair_receiver", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def running_example_receiver(*, secrets: list[str], sendpromptly_url: str, api_key: str,
                                   effect: Callable[[dict[str, Any]], Awaitable[None]],
                                   port: int = 0) -> AsyncIterator[str]:
    """Serve the example on loopback (``port``, or a free one); yields its callback URL. ``secrets``
    is read on every request, so the caller may fill it in once the URL is saved and its secret known."""
    app = load_example_receiver().make_app(secrets=secrets, sendpromptly_url=sendpromptly_url,
                                           api_key=api_key, effect=effect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/repair"
    finally:
        await runner.cleanup()
