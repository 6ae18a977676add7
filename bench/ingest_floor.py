"""The durability floor: the least an ingest handler must do before a 202, and nothing else.

Same framework, event loop and JSON library as the gateway and the bare handler. The handler parses
the JSON body, then, by MODE:

- ``kafka``: publishes it with the gateway's own ``Publisher`` (acks=all, idempotent producer) and
  answers 202 after the broker's ack;
- ``kafka+db``: first claims the Idempotency-Key with the gateway's own batched claim (one
  multi-row INSERT per batch of concurrent requests), then publishes as above;
- ``batch``: a batch request's floor: claims every item's key in one multi-row INSERT (the gateway's
  ``claim_many``), publishes the items at once (``publish_many``) and answers 200 after the acks.

No authentication, validation, completion, metrics or middlewares. So it tells what a Kafka ack
(and one idempotency write) cost on this machine with these libraries, apart from the gateway's own
code: if the floor itself is below the target ratio, no gateway code reaches it here.

    python -m bench.ingest_floor PORT MODE    # SENDPROMPTLY_KAFKA_BOOTSTRAP, _DATABASE_URL, FLOOR_TOPIC
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import uvloop
from aiohttp import web

from api_gateway.idempotency_batcher import IdempotencyBatcher
from api_gateway.publisher import Publisher
from store.db import Pool, open_pool
from store.idempotency import ClaimRequest, StoredResponse, claim_many

MODES = ("kafka", "kafka+db", "batch")
PUBLISHER = web.AppKey("publisher", Publisher)
BATCHER = web.AppKey("batcher", IdempotencyBatcher)
POOL = web.AppKey("pool", Pool)
TOPIC = web.AppKey("topic", str)


async def receipt(request: web.Request) -> web.Response:
    body = await request.read()
    doc = orjson.loads(body)
    answer = orjson.dumps({"reference": doc.get("reference"), "status": "pending"})
    batcher = request.app.get(BATCHER)
    if batcher is not None:
        await batcher.claim("floor", request.headers["Idempotency-Key"], hashlib.sha256(body).digest(),
                            StoredResponse(202, {"Content-Type": "application/json"}, answer),
                            datetime.now(UTC))
    await request.app[PUBLISHER].publish(request.app[TOPIC], doc["reference"].encode(), body)
    return web.Response(status=202, body=answer, content_type="application/json")


async def batch(request: web.Request) -> web.Response:
    items = orjson.loads(await request.read())["items"]
    answers = [orjson.dumps({"reference": item["reference"], "status": "accepted"}) for item in items]
    received_at = datetime.now(UTC)
    async with request.app[POOL].connection() as conn:
        await claim_many(conn, [
            ClaimRequest("floor", item["idempotency_key"], hashlib.sha256(orjson.dumps(item)).digest(),
                         StoredResponse(202, {"Content-Type": "application/json"}, answer), received_at)
            for item, answer in zip(items, answers, strict=True)])
    await request.app[PUBLISHER].publish_many(
        request.app[TOPIC], [(item["reference"].encode(), orjson.dumps(item)) for item in items])
    return web.Response(status=200, body=b"[" + b",".join(answers) + b"]", content_type="application/json")


def make_app(mode: str) -> web.Application:
    app = web.Application()
    app[TOPIC] = os.environ["FLOOR_TOPIC"]

    async def kafka(app: web.Application) -> AsyncIterator[None]:
        app[PUBLISHER] = Publisher(os.environ["SENDPROMPTLY_KAFKA_BOOTSTRAP"], timeout_ms=5000)
        yield
        app[PUBLISHER].close()

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await open_pool(os.environ["SENDPROMPTLY_DATABASE_URL"], max_size=20)
        app[POOL] = pool
        if mode == "kafka+db":
            app[BATCHER] = IdempotencyBatcher(pool)
        yield
        if mode == "kafka+db":
            await app[BATCHER].close()
        await pool.close()

    app.cleanup_ctx.append(kafka)
    if mode != "kafka":
        app.cleanup_ctx.append(database)
    app.router.add_post("/api/v1/receipt", receipt)
    app.router.add_post("/api/v1/receipts/batch", batch)
    return app


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode not in MODES:
        raise SystemExit(f"MODE must be one of {', '.join(MODES)}, not {mode!r}")
    web.run_app(make_app(mode), host="127.0.0.1", port=port, access_log=None, print=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
