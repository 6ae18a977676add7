"""Typed keys for what the gateway keeps on its application and on each request."""

from __future__ import annotations

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from api_gateway.publisher import Publisher
from sendpromptly.config import Settings
from sendpromptly.ttlcache import TTLCache
from store.projects import Project

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", AsyncConnectionPool)
PUBLISHER = web.AppKey("publisher", Publisher)
API_KEY_CACHE = web.AppKey("api_key_cache", TTLCache[bytes, Project | None])

# Set on the request by the auth middleware for ingest routes.
PROJECT = "sendpromptly.project"
