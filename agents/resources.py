"""The agents' hold on the database, as a faust service: the pool, the project settings read through
it and the flow tracker that asks for them; the pool is closed when the worker stops."""

from __future__ import annotations

import logging
from typing import Any

from mode import Service

from agents.processing import until_done
from agents.projects import ProjectDirectory
from agents.tracker import FlowTracker, TrackerTopics
from common.config import Settings
from store.db import Pool, open_pool

log = logging.getLogger(__name__)


class FlowResources(Service):
    """The flow tracker and the database pool behind it, for the worker's lifetime.

    The pool opens when the agent first asks for the tracker, not when this service starts: the
    rest of the worker (its health page, its consumer) must come up while the database is away, and
    the agent waits for the database, trying again until it answers. Make it the app's first
    dependency (``app.add_dependency`` before the worker starts): faust stops an app's services in
    the reverse order, so the pool closes after the agent has stopped and no message is handled
    against a closed pool."""

    def __init__(self, settings: Settings, topics: TrackerTopics, **kwargs: Any):
        super().__init__(**kwargs)
        self._settings = settings
        self._topics = topics
        self._pool: Pool | None = None
        self._tracker: FlowTracker | None = None

    async def tracker(self) -> FlowTracker:
        """The flow tracker, the pool opened first if it is not yet."""
        if self._tracker is None:
            database_url = self._settings.database_url
            self._pool = await until_done(lambda: open_pool(database_url, max_size=4),
                                          "opening the database pool")
            self._tracker = FlowTracker(topics=self._topics, projects=ProjectDirectory(self._pool),
                                        partitions=self._settings.flow_partitions,
                                        retention=self._settings.flow_retention)
        return self._tracker

    async def on_stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            log.info("database pool closed")
