"""The alert sender: claims due notifications, sends each through its channel, records the outcome.

Runs in every alerts-sink process; replicas share the work through the ``notifications`` table
(``store/notifications.py``). Passing failures are retried on ``SENDPROMPTLY_ALERT_RETRY_SCHEDULE``
with the repair callbacks' backoff (``sinks/callback_policy.retry_delay``); a permanent one fails
the notification at once and is recorded on the destination, where operators see it. The loop
also turns repair callbacks that ran out of retries into alerts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from sendpromptly.config import Settings
from sinks.callback_policy import retry_delay
from sinks.channels import Channel, TransportError, open_channels
from sinks.channels.message import CALLBACK_EXHAUSTED, Alert
from sinks.retrying import run_rounds
from store import destinations, notifications
from store.db import Pool
from store.notifications import FAILED, PENDING, SENT, Notification
from topics.fields import format_timestamp

log = logging.getLogger(__name__)

ALERTS_SENT = Counter("sendpromptly_alerts_sent_total", "Alert sends, by channel and what came of them",
                      ["channel", "outcome"])
OUTCOME_LABELS = {SENT: "sent", PENDING: "retrying", FAILED: "failed"}

# Longer than a send can take (channels time out after 10 s): a notification leased by a process
# that died is sent again after this, by whichever replica claims it.
LEASE = timedelta(seconds=60)
POLL_SECONDS = 1.0
CLAIM_BATCH = 20
# How often to look for exhausted repair callbacks, and how far back (a sink down for longer
# misses older ones).
EXHAUSTED_SCAN_SECONDS = 5.0
EXHAUSTED_LOOKBACK = timedelta(days=7)


class AlertSender:
    def __init__(self, pool: Pool, settings: Settings):
        self._pool = pool
        self._settings = settings
        self._channels: dict[str, Channel] = {}
        self._rng = random.Random()
        self._wake = asyncio.Event()
        self._next_scan = 0.0

    def wake(self) -> None:
        """Notifications were claimed: send now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        async with open_channels(self._settings) as self._channels:
            await run_rounds(self._pool, self._round, self._wake, name="alert delivery",
                             poll_seconds=POLL_SECONDS)

    async def _round(self) -> bool:
        """Claim due alerts (and, now and then, exhausted callbacks) and send each; True when
        more may be due. A round that fails leaves its leased notifications to come back after
        the lease."""
        if time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + EXHAUSTED_SCAN_SECONDS
            await self._claim_exhausted_callbacks()
        async with self._pool.connection() as conn:
            claimed = await notifications.claim_due(conn, limit=CLAIM_BATCH, lease=LEASE)
        await asyncio.gather(*(self._send(notification) for notification in claimed))
        return len(claimed) == CLAIM_BATCH

    async def _send(self, notification: Notification) -> None:
        number = notification.attempts + 1
        alert = Alert.from_dict(notification.alert)
        error: TransportError | None = None
        try:
            if notification.destination_removed:
                raise TransportError("the destination was removed", permanent=True)
            await self._channels[notification.destination_type].send(notification.target, alert)
        except TransportError as exc:
            error = exc
        except Exception as exc:
            # A bug in a channel must not stall the loop on this one alert: it waits its turn
            # like any passing failure.
            log.exception("alert %d: sending failed unexpectedly", notification.id)
            error = TransportError(f"{type(exc).__name__}: {exc}", permanent=False)
        status, next_attempt_at = self._next_state(number, error)
        async with self._pool.connection() as conn, conn.transaction():
            if not await notifications.record_attempt(conn, notification.id, number, status=status,
                                                      next_attempt_at=next_attempt_at,
                                                      error=None if error is None else error.message):
                log.warning("alert %d attempt %d was recorded by another process", notification.id, number)
                return
            if (error is None or error.permanent) and not notification.destination_removed:
                await destinations.record_outcome(conn, notification.destination_id,
                                                  None if error is None else error.message)
        ALERTS_SENT.labels(notification.destination_type, OUTCOME_LABELS[status]).inc()
        log.info("alert %d (%s %s to %s) attempt %d: %s%s", notification.id, alert.kind, alert.incident_id,
                 notification.destination_id, number, OUTCOME_LABELS[status],
                 "" if error is None else f" ({error.message})")

    def _next_state(self, number: int, error: TransportError | None) -> tuple[str, datetime | None]:
        if error is None:
            return SENT, None
        delay = None if error.permanent else retry_delay(self._settings.alert_retry_schedule, number, None,
                                                         self._rng)
        if delay is None:
            return FAILED, None
        return PENDING, datetime.now(UTC) + timedelta(seconds=delay)

    async def _claim_exhausted_callbacks(self) -> None:
        async with self._pool.connection() as conn:
            found = await notifications.unannounced_exhausted_callbacks(conn, since=EXHAUSTED_LOOKBACK)
            for callback in found:
                alert = Alert(kind=CALLBACK_EXHAUSTED, project_id=callback.project_id,
                              project_name=callback.project_name, mode=callback.mode,
                              occurred_at=format_timestamp(callback.finished_at),
                              incident_id=callback.incident_id, reference=callback.reference,
                              reason=callback.reason, replay_id=callback.replay_id, error=callback.last_error)
                await notifications.claim(conn, project_id=callback.project_id,
                                          incident_id=callback.incident_id,
                                          event_type=CALLBACK_EXHAUSTED, replay_id=callback.replay_id,
                                          alert=alert.to_dict())
