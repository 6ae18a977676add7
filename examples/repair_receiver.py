"""An example repair-callback receiver (aiohttp): verify, rerun the effect once per replay, report.

    SENDPROMPTLY_URL=http://127.0.0.1:8080 SENDPROMPTLY_API_KEY=sk_... \\
    REPAIR_SECRETS=whsec_...[,whsec_...] python examples/repair_receiver.py --port 9000

then set the project's repair callback to ``http://127.0.0.1:9000/repair``. On each callback it:

1. verifies the signature on the raw body, the timestamp and the nonce (``common.receiver``;
   copy that one file into your app);
2. reruns the effect, idempotently keyed on ``replay_id`` (the ``webhook-id`` header): delivery
   is at least once, so the same replay may come again, as a retry or as a resend after
   SendPromptly stopped mid-attempt, each time with the next ``attempt`` number and a new
   ``nonce``, and it must not grant twice. The record of what ran is in memory here, which is only
   good for a demo: keep it in your database, in the transaction that applies the effect;
3. reports ``POST /api/v1/result`` with the ``replay_id``; the Idempotency-Key derives from the
   replay id, so reporting again after a lost answer counts once. A ``succeeded`` result resolves
   the incident.

It answers 2xx only once the result is reported, so if reporting fails SendPromptly calls again.
A test callback (``"test": true``, ``type`` ``repair.test``) is verified the same way and answered
2xx without any effect or report.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from common.receiver import InMemoryNonceStore, VerificationError, verify

log = logging.getLogger("repair_receiver")

Effect = Callable[[dict[str, Any]], Awaitable[None]]

SECRETS = web.AppKey("secrets", list)
NONCES = web.AppKey("nonces", InMemoryNonceStore)
APPLIED = web.AppKey("applied", dict)
EFFECT = web.AppKey("effect", object)
REPORT_TO = web.AppKey("report_to", tuple)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def log_effect(callback: dict[str, Any]) -> None:
    """Stands in for the real effect (grant access, ship the order...)."""
    log.info("rerunning %s for %s (%s)", callback["effect_type"], callback["reference"],
             callback["event_type"])


async def repair(request: web.Request) -> web.Response:
    app = request.app
    try:
        callback = verify(await request.read(), request.headers, app[SECRETS], nonce_store=app[NONCES])
    except VerificationError as exc:
        log.warning("refused a callback: %s", exc)
        return web.json_response({"error": str(exc)}, status=401)
    if callback.get("test"):
        # A test callback (the console's button, `sendpromptly callback test`): it names no flow,
        # there is nothing to rerun; a 2xx says the URL, the signature and the receiver all work.
        return web.json_response({"replay_id": callback["replay_id"], "test": "verified"})
    replay_id = callback["replay_id"]
    if replay_id not in app[APPLIED]:
        await app[EFFECT](callback)
        app[APPLIED][replay_id] = callback
    if not await report_success(app, callback):
        return web.json_response({"error": "could not report the result yet"}, status=503)
    return web.json_response({"replay_id": replay_id, "status": "succeeded"})


async def report_success(app: web.Application, callback: dict[str, Any]) -> bool:
    base_url, api_key = app[REPORT_TO]
    headers = {"Authorization": f"Bearer {api_key}",
               "Idempotency-Key": f"repair-result:{callback['replay_id']}"}
    body = {"reference": callback["reference"], "status": "succeeded", "replay_id": callback["replay_id"]}
    try:
        async with app[SESSION].post(f"{base_url}/api/v1/result", json=body, headers=headers) as response:
            if response.status == 202:
                return True
            log.warning("reporting %s: HTTP %d", callback["replay_id"], response.status)
    except aiohttp.ClientError as exc:
        log.warning("reporting %s: %s", callback["replay_id"], exc)
    return False


def make_app(*, secrets: list[str], sendpromptly_url: str, api_key: str,
             effect: Effect = log_effect) -> web.Application:
    app = web.Application()
    app[SECRETS] = secrets
    app[NONCES] = InMemoryNonceStore()
    app[APPLIED] = {}
    app[EFFECT] = effect
    app[REPORT_TO] = (sendpromptly_url.rstrip("/"), api_key)

    async def session(app: web.Application):
        app[SESSION] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    app.router.add_post("/repair", repair)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    app = make_app(secrets=os.environ["REPAIR_SECRETS"].split(","),
                   sendpromptly_url=os.environ.get("SENDPROMPTLY_URL", "http://127.0.0.1:8080"),
                   api_key=os.environ["SENDPROMPTLY_API_KEY"])
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
