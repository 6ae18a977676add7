"""The agents' read-only view of project settings (mode, default timeout), cached briefly."""

from __future__ import annotations

from common.ttlcache import TTLCache
from store.db import Pool
from store.projects import Project, get_project

# Settings changes (mode, timeout) reach new flows within this many seconds.
PROJECT_CACHE_SECONDS = 5.0


class ProjectDirectory:
    def __init__(self, pool: Pool):
        self._pool = pool
        self._cache: TTLCache[str, Project | None] = TTLCache(self._load, PROJECT_CACHE_SECONDS)

    async def _load(self, project_id: str) -> Project | None:
        async with self._pool.connection() as conn:
            return await get_project(conn, project_id)

    async def get(self, project_id: str) -> Project | None:
        return await self._cache.get(project_id)
