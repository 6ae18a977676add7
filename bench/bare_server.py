"""The baseline: a bare aiohttp handler that only parses the JSON body and answers 202.

Same framework, same event loop (uvloop) and the same JSON library as the gateway, so the ratio
measures what the gateway adds: authentication, validation, idempotency and the Kafka round trip.
"""

from __future__ import annotations

import sys

import orjson
import uvloop
from aiohttp import web


async def receipt(request: web.Request) -> web.Response:
    doc = orjson.loads(await request.read())
    return web.Response(status=202,
                        body=orjson.dumps({"reference": doc.get("reference"), "status": "pending"}),
                        content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/api/v1/receipt", receipt)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
