"""The project's repair callback endpoint on loopback: records every POST as it arrives (webhook-id,
attempt, nonce) and holds it open 0.5-1 s before answering 200, so a kill -9 of the callbacks sink
can land in the middle of one."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

HOLD_SECONDS = (0.5, 1.0)


@dataclass(frozen=True)
class CallbackSeen:
    webhook_id: str
    attempt: int
    nonce: str
    arrived_at: float


@dataclass
class HoldingReceiver:
    url: str = ""
    seen: list[CallbackSeen] = field(default_factory=list)
    open_posts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.seen.append(CallbackSeen(request.headers["webhook-id"], int(body["attempt"]), str(body["nonce"]),
                                      time.time()))
        self.open_posts += 1
        try:
            await asyncio.sleep(random.uniform(*HOLD_SECONDS))
        finally:
            self.open_posts -= 1
        return web.Response(status=200, text="")

    async def wait_for_open_post(self, timeout: float) -> bool:
        """True once a POST is being held (False if none comes within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.open_posts == 0:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True


@asynccontextmanager
async def holding_receiver() -> AsyncIterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    app = web.Application()
    app.router.add_post("/repair", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/repair"
    try:
        yield receiver
    finally:
        await runner.cleanup()
