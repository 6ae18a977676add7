"""An open-loop HTTP/1.1 load generator that costs little CPU: requests go out at a fixed rate
whatever the answers do, and each latency is measured from the request's *scheduled* time, so a
stall shows up in the tail instead of slowing the sender down (no coordinated omission).

An aiohttp client costs a few hundred microseconds of CPU per request; on a 2-core machine that
shares its cores with the server, Kafka and PostgreSQL, it made the tail it measured. This one
writes pre-built request bytes on plain asyncio connections (uvloop) and reads only the status
line and Content-Length of each answer: tens of microseconds per request.

A request due while every connection waits for an answer gets a new connection (up to
``max_connections``); opening it is part of that request's latency, as it would be for a client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import uvloop

# The sender sleeps at least one tick of the event loop's timers (milliseconds; a shorter sleep
# returns at once and spins) and then sends what fell due meanwhile, up to a tick late: that
# lateness counts in the latency, for every server alike.
_TICK_SECONDS = 0.001
# How far ahead of its scheduled time a request may go out.
_EARLY_SECONDS = 0.0002


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer read by Content-Length."""

    def __init__(self, tally: _Tally, idle: list[_Connection]):
        self._tally = tally
        self._idle = idle
        self._transport: asyncio.WriteTransport | None = None
        self._buffer = bytearray()
        self._scheduled = 0.0
        self._waiting = False
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is no subclass of asyncio's classes, so no isinstance check).
        self._transport = cast(asyncio.WriteTransport, transport)

    def send(self, request: bytes, scheduled: float) -> None:
        assert self._transport is not None
        self._scheduled = scheduled
        self._waiting = True
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).split(b"\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head[1:]
                       if line[:15].lower() == b"content-length:"), 0)
        if len(self._buffer) < end + 4 + length:
            return
        del self._buffer[:end + 4 + length]
        self._waiting = False
        self._tally.latencies.append(time.perf_counter() - self._scheduled)
        status = int(head[0].split(b" ", 2)[1])
        self._tally.statuses[status] = self._tally.statuses.get(status, 0) + 1
        self._idle.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self._idle:
            self._idle.remove(self)
        elif self._waiting:
            self._tally.errors += 1
        if not self._lost.done():
            self._lost.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def closed(self) -> None:
        await self._lost


def http_post(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 POST on a keep-alive connection."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _run(host: str, port: int, request: Callable[[int], bytes], rate: float, seconds: float,
               max_connections: int, warm_connections: int) -> _Tally:
    loop = asyncio.get_running_loop()
    tally = _Tally()
    idle: list[_Connection] = []
    opened: list[_Connection] = []

    async def connect() -> _Connection:
        _, connection = await loop.create_connection(lambda: _Connection(tally, idle), host, port)
        opened.append(connection)
        return connection

    async def send_on_new(payload: bytes, scheduled: float) -> None:
        try:
            connection = await connect()
        except OSError:
            tally.errors += 1
            return
        connection.send(payload, scheduled)

    for connection in await asyncio.gather(*(connect() for _ in range(warm_connections))):
        idle.append(connection)
    total = int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.01
    n = 0
    while n < total:
        # Everything due by now goes out at once: one wake-up per timer tick, not per request.
        now = time.perf_counter()
        while n < total and start + n / rate <= now + _EARLY_SECONDS:
            scheduled = start + n / rate
            payload = request(n)
            n += 1
            if idle:
                idle.pop().send(payload, scheduled)
            elif len(opened) + len(pending) < max_connections:
                task = asyncio.create_task(send_on_new(payload, scheduled))
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                tally.errors += 1  # nowhere to send it: counted, not silently delayed
        if n < total:
            await asyncio.sleep(max(_TICK_SECONDS, start + n / rate - time.perf_counter()))
    deadline = time.perf_counter() + 30
    while len(tally.latencies) + tally.errors < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    tally.errors += total - len(tally.latencies) - tally.errors
    for connection in opened:
        connection.close()
    await asyncio.gather(*(connection.closed() for connection in opened))
    return tally


def open_loop(host: str, port: int, request: Callable[[int], bytes], rate: float, seconds: float, *,
              expect_status: int = 202, max_connections: int = 1024,
              warm_connections: int = 32) -> dict[str, float]:
    """Send ``rate`` requests a second for ``seconds`` (request ``n`` is ``request(n)``); the
    latency percentiles from each request's scheduled time, and how many failed (a status other
    than ``expect_status``, a lost connection, no answer within 30 s of the last send)."""
    tally = uvloop.run(_run(host, port, request, rate, seconds, max_connections, warm_connections))
    latencies = sorted(tally.latencies)
    refused = sum(count for status, count in tally.statuses.items() if status != expect_status)
    failures = tally.errors + refused
    if not latencies:
        raise RuntimeError(f"no answers from {host}:{port} ({tally.errors} errors)")
    return {"rate": rate, "requests": int(rate * seconds), "failures": failures,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)], "max_ms": 1000 * latencies[-1]}
