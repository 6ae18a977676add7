"""Typed keys for what the gateway keeps on its application and on each request."""

from __future__ import annotations

from aiohttp import web

from api_gateway.key_usage import KeyUsage
from api_gateway.publisher import Publisher
from common.config import Settings
from common.keyring import Keyring
from common.ttlcache import TTLCache
from store.db import Pool
from store.operators import Operator
from store.projects import Project

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", Pool)
PUBLISHER = web.AppKey("publisher", Publisher)
API_KEY_CACHE = web.AppKey("api_key_cache", TTLCache[bytes, Project | None])
OPERATOR_CACHE = web.AppKey("operator_cache", TTLCache[bytes, Operator | None])
SECRETS_KEYRING = web.AppKey("secrets_keyring", Keyring)
SNAPSHOT_KEYRING = web.AppKey("snapshot_keyring", Keyring)
KEY_USAGE = web.AppKey("key_usage", KeyUsage)

# Set on the request by the auth middleware: the API key's project (ingest routes), the operator
# (operator routes).
PROJECT = "sendpromptly.project"
OPERATOR = "sendpromptly.operator"
