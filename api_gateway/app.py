"""The gateway's app factory: the same app for production, the local stack and the tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvloop
from aiohttp import web

from api_gateway.auth import auth_middleware
from api_gateway.console.middleware import console_middleware
from api_gateway.console.pages import setup_pages
from api_gateway.http_input import MAX_BATCH_BYTES
from api_gateway.idempotency import BATCHER
from api_gateway.idempotency_batcher import IdempotencyBatcher
from api_gateway.key_usage import KeyUsage
from api_gateway.metrics import metrics_middleware
from api_gateway.outbox_relay import run_relay
from api_gateway.problems import problem_middleware
from api_gateway.publisher import Publisher
from api_gateway.request_context import request_context_middleware
from api_gateway.routes import setup_routes
from api_gateway.state import (
    API_KEY_CACHE,
    KEY_USAGE,
    OPERATOR_CACHE,
    POOL,
    PUBLISHER,
    SECRETS_KEYRING,
    SETTINGS,
    SNAPSHOT_KEYRING,
)
from common.config import Settings
from common.keyring import Keyring
from common.observability import configure_logging
from common.ttlcache import TTLCache
from store.db import Pool, open_pool
from store.idempotency import purge_expired
from store.operators import Operator, operator_for_token_hash
from store.projects import Project, project_for_key_hash

# A revoked key or token must be refused by every replica within 5 s; caching
# lookups for less than that keeps the database out of the hot path.
CREDENTIAL_CACHE_SECONDS = 2.0
IDEMPOTENCY_PURGE_SECONDS = 600
# A request waits this long for a database connection before it is answered 503 with Retry-After:
# while the database is away, clients hear so in seconds instead of hanging on psycopg's 30 s.
DATABASE_WAIT_SECONDS = 5.0


async def _database(app: web.Application) -> AsyncIterator[None]:
    pool = await open_pool(app[SETTINGS].database_url, max_size=20, wait_seconds=DATABASE_WAIT_SECONDS)
    app[POOL] = pool

    async def lookup(key_hash: bytes) -> Project | None:
        async with pool.connection() as conn:
            return await project_for_key_hash(conn, key_hash)

    async def lookup_operator(token_hash: bytes) -> Operator | None:
        async with pool.connection() as conn:
            return await operator_for_token_hash(conn, token_hash)

    app[API_KEY_CACHE] = TTLCache(lookup, CREDENTIAL_CACHE_SECONDS)
    app[OPERATOR_CACHE] = TTLCache(lookup_operator, CREDENTIAL_CACHE_SECONDS)
    yield
    await pool.close()


async def _idempotency_batching(app: web.Application) -> AsyncIterator[None]:
    batcher = IdempotencyBatcher(app[POOL])
    app[BATCHER] = batcher
    yield
    # Before the pool closes: no request waits on a batch any more, but a batch may still be running
    # and completions may be retrying in the background.
    await batcher.close()


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    publisher = Publisher(settings.kafka_bootstrap, timeout_ms=settings.produce_timeout_ms)
    app[PUBLISHER] = publisher
    yield
    await asyncio.to_thread(publisher.close)


async def _purge_idempotency_records(pool: Pool) -> None:
    """Records older than 24 h answer nothing any more; delete them so the table stays small."""
    while True:
        try:
            async with pool.connection() as conn:
                await purge_expired(conn)
        except Exception:
            logging.getLogger(__name__).warning("could not purge idempotency records; will retry",
                                                exc_info=True)
        await asyncio.sleep(IDEMPOTENCY_PURGE_SECONDS)


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The audit outbox relay, the API-key usage writer and the idempotency purge, for as long as
    the app runs."""
    tasks = [
        asyncio.create_task(run_relay(app[POOL], app[PUBLISHER], app[SETTINGS].topic_prefix)),
        asyncio.create_task(app[KEY_USAGE].run(app[POOL])),
        asyncio.create_task(_purge_idempotency_records(app[POOL])),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[KEY_USAGE].flush(app[POOL])


def create_app(settings: Settings) -> web.Application:
    # The outermost middleware runs first: metrics see every answer, problems turn errors into
    # problem+json before metrics count them (the console's pages turn theirs into HTML pages first),
    # and auth runs closest to the handler.
    app = web.Application(
        # The request id only where JSON logs show it: the ingest path pays nothing for it otherwise.
        middlewares=[*([request_context_middleware] if settings.log_format == "json" else []),
                     metrics_middleware, problem_middleware, console_middleware, auth_middleware],
        # The largest body any route takes; each route's own limit is checked as it reads the body.
        client_max_size=MAX_BATCH_BYTES,
    )
    app[SETTINGS] = settings
    app[SECRETS_KEYRING] = Keyring.parse("SENDPROMPTLY_SECRET_KEYS", settings.secret_keys)
    app[SNAPSHOT_KEYRING] = Keyring.parse("SENDPROMPTLY_SNAPSHOT_KEYS", settings.snapshot_keys)
    app[KEY_USAGE] = KeyUsage()
    app.cleanup_ctx.extend([_database, _idempotency_batching, _kafka, _background])
    setup_pages(app)
    setup_routes(app)
    return app


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT (``sendpromptly gateway``)."""
    configure_logging(settings)
    web.run_app(
        create_app(settings), host=settings.http_host, port=settings.http_port,
        reuse_port=settings.http_reuse_port or None, access_log=None,
        print=lambda *_: logging.getLogger(__name__).info(
            "gateway listening on http://%s:%d", settings.http_host, settings.http_port),
        loop=uvloop.new_event_loop(),
    )
