"""The alert sender: claims due notifications, sends each through its channel, records the outcome.

Runs in every alerts-sink process; replicas share the work through the ``notifications`` table
(``store/notifications.py``). Passing failures are retried on ``SENDPROMPTLY_ALERT_RETRY_SCHEDULE``
with the repair callbacks' backoff (``common/callback_policy.retry_delay``); a permanent one fails
the notification at once and is recorded on the destination, where operators see it. Every send
is recorded as an attempt (number, time) before it is made and its outcome after; a process that
dies between the two leaves the attempt without outcome, and once the lease
(``SENDPROMPTLY_ALERT_LEASE_SECONDS``) runs out the next claim records it as interrupted, a failed
send counted against the retry schedule, and the alert is sent again: alerts are at least once, and
every send is on record. The loop also turns repair callbacks that ran out of retries into alerts.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta
from functools import partial

from prometheus_client import Counter

from channels import Channel, TransportError, open_channels
from channels.message import CALLBACK_EXHAUSTED, Alert
from common.callback_policy import retry_delay
from common.config import Settings
from sinks.claim_loop import ClaimLoop
from sinks.retrying import retry_transient
from store import audit, destinations, notifications
from store.db import Connection, Pool
from store.notifications import INTERRUPTED, Notification, NotificationStatus
from topics.fields import format_timestamp

log = logging.getLogger(__name__)

ACTOR = "system:alerts"

ALERTS_SENT = Counter("sendpromptly_alerts_sent_total", "Alert sends, by channel and what came of them",
                      ["channel", "outcome"])
OUTCOME_LABELS = {NotificationStatus.SENT: "sent", NotificationStatus.PENDING: "retrying",
                  NotificationStatus.FAILED: "failed"}

# How often to look for exhausted repair callbacks, and how far back (a sink down for longer
# misses older ones).
EXHAUSTED_SCAN_SECONDS = 5.0
EXHAUSTED_LOOKBACK = timedelta(days=7)


class AlertSender:
    def __init__(self, pool: Pool, settings: Settings):
        self._pool = pool
        self._settings = settings
        self._channels: dict[str, Channel] = {}
        self._rng = random.Random()  # noqa: S311 (retry jitter, not a secret)
        self._next_scan = 0.0
        # Longer than a send can take (the setting's lower bound sees to it): a notification leased
        # by a process that died is taken again after this, by whichever replica claims it.
        self._loop = ClaimLoop(
            pool, name="alert delivery", lease=timedelta(seconds=settings.alert_lease_seconds),
            claim=notifications.claim_due, attempt=self._send, record_interrupted=self._record_interrupted,
            describe=lambda notification: f"alert {notification.id}: send",
            before_round=self._now_and_then_claim_exhausted_callbacks)

    def wake(self) -> None:
        """Notifications were claimed: send now rather than at the next poll."""
        self._loop.wake()

    async def run(self) -> None:
        async with open_channels(self._settings) as self._channels:
            await self._loop.run()

    async def _now_and_then_claim_exhausted_callbacks(self) -> None:
        if time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + EXHAUSTED_SCAN_SECONDS
            await self._claim_exhausted_callbacks()

    async def _record_interrupted(self, notification: Notification) -> None:
        await self._record(notification, notification.attempts, TransportError(INTERRUPTED, permanent=False))

    async def _send(self, notification: Notification, leased_until: float) -> None:
        if notification.destination_removed:
            async with self._pool.connection() as conn:
                await notifications.finish_without_attempt(conn, notification.id,
                                                           "the destination was removed")
            log.info("alert %d: not sent: its destination %s was removed", notification.id,
                     notification.destination_id)
            return
        number = notification.attempts + 1
        if not await self._begin(notification, number):
            return
        error = await self._transmit(notification, Alert.from_dict(notification.alert))
        # Tried while the lease lasts; after it, the next claim records the send as interrupted.
        await retry_transient(partial(self._record, notification, number, error),
                              what=f"recording alert {notification.id} attempt {number}",
                              deadline=leased_until)

    async def _begin(self, notification: Notification, number: int) -> bool:
        """Record the send before it is made, so that no alert goes out that the record does not
        show; False when another process began it first."""
        async with self._pool.connection() as conn, conn.transaction():
            if await notifications.begin_attempt(conn, notification.id, number, datetime.now(UTC)):
                return True
        log.warning("alert %d attempt %d was begun by another process; leaving it to that one",
                    notification.id, number)
        return False

    async def _transmit(self, notification: Notification, alert: Alert) -> TransportError | None:
        """Send through the destination's channel; why it failed, or None when it was accepted."""
        try:
            await self._channels[notification.destination_type].send(notification.target, alert)
        except TransportError as exc:
            return exc
        except Exception as exc:
            # A bug in a channel must not stall the loop on this one alert: it waits its turn
            # like any passing failure.
            log.exception("alert %d: sending failed unexpectedly", notification.id)
            return TransportError(f"{type(exc).__name__}: {exc}", permanent=False)
        return None

    async def _record(self, notification: Notification, number: int, error: TransportError | None) -> None:
        """The outcome of begun send ``number``, the notification's next state, and the destination's
        last failure."""
        status, next_attempt_at = self._next_state(number, error)
        async with self._pool.connection() as conn, conn.transaction():
            if not await notifications.finish_attempt(conn, notification.id, number, status=status,
                                                      next_attempt_at=next_attempt_at,
                                                      error=None if error is None else error.message):
                log.warning("alert %d attempt %d has an outcome already (its lease ran out and it was "
                            "recorded as interrupted); dropping this one", notification.id, number)
                return
            if error is None or error.permanent:
                await destinations.record_outcome(conn, notification.destination_id,
                                                  None if error is None else error.message)
            await _audit(conn, notification, number, status, error)
        ALERTS_SENT.labels(notification.destination_type, OUTCOME_LABELS[status]).inc()
        log.info("alert %d (%s %s to %s) attempt %d: %s%s", notification.id, notification.alert.get("kind"),
                 notification.alert.get("incident_id"), notification.destination_id, number,
                 OUTCOME_LABELS[status], "" if error is None else f" ({error.message})")

    def _next_state(self, number: int,
                    error: TransportError | None) -> tuple[NotificationStatus, datetime | None]:
        if error is None:
            return NotificationStatus.SENT, None
        delay = None if error.permanent else retry_delay(self._settings.alert_retry_schedule, number, None,
                                                         self._rng)
        if delay is None:
            return NotificationStatus.FAILED, None
        return NotificationStatus.PENDING, datetime.now(UTC) + timedelta(seconds=delay)

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


async def _audit(conn: Connection, notification: Notification, number: int, status: NotificationStatus,
                 error: TransportError | None) -> None:
    """Every send and its failure in the project's audit log, in the outcome's transaction: the
    destination, never its target (a Slack webhook URL is a secret) nor the message."""
    alert = Alert.from_dict(notification.alert)
    await audit.record(
        conn, project_id=alert.project_id, actor=ACTOR,
        action="alert.sent" if error is None else "alert.failed",
        # Every notification is about an incident (its table says so); the alert's type allows none.
        target=alert.incident_id or notification.destination_id,
        data={"destination_id": notification.destination_id,
              "destination_type": notification.destination_type, "incident_id": alert.incident_id,
              "event": alert.kind, "attempt": number, "status": status,
              "error": None if error is None else error.message},
    )
