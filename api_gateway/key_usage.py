"""``last_used_at`` of API keys without a database write per request: authenticated requests note
their key in memory, and one statement per interval writes them all."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from store.db import Pool
from store.projects import touch_api_keys

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0


class KeyUsage:
    def __init__(self) -> None:
        self._seen: dict[bytes, datetime] = {}

    def note(self, key_hash: bytes) -> None:
        self._seen[key_hash] = datetime.now(UTC)

    async def flush(self, pool: Pool) -> None:
        seen, self._seen = self._seen, {}
        if not seen:
            return
        try:
            async with pool.connection() as conn:
                await touch_api_keys(conn, seen)
        except Exception:
            # Put them back (keeping newer sightings) so a database hiccup loses no usage.
            for key_hash, at in seen.items():
                self._seen[key_hash] = max(at, self._seen.get(key_hash, at))
            raise

    async def run(self, pool: Pool) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush(pool)
            except Exception:
                log.warning("could not record API key usage; will retry", exc_info=True)
