"""Repair-callback attempts: claim due deliveries, call the project's URL, record.

The request is Standard Webhooks: ``webhook-id`` is the replay id (the same on every retry),
``webhook-timestamp`` this attempt's time, ``webhook-signature`` one ``v1,`` signature per active
secret (two during a rotation). Each attempt has a new ``nonce`` in the body, so a receiver can
tell a replayed request from our own retry. Every attempt is recorded and counted on the incident's
replay before its request is sent, and its outcome recorded and audited after (status and latency;
never the payload or a secret). A process that dies between the two leaves the attempt without
outcome; once the lease runs out the next claim records it as interrupted, a failed attempt like
any other, and the retry goes out with the same ``webhook-id``: delivery is at least once per
replay, and receivers apply it once per ``webhook-id``.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import aiohttp
from prometheus_client import Counter, Histogram

from common.callback_body import RepairCallbackBody
from common.callback_policy import ATTEMPT_TIMEOUT_SECONDS, Verdict, retry_delay, verdict
from common.callback_request import Outcome, post_signed, signed_headers, signing_target
from common.config import Settings
from common.keyring import DecryptionError, Keyring
from common.safe_http import outbound_session
from common.snapshots import open_snapshot
from sinks.claim_loop import ClaimLoop
from sinks.retrying import retry_transient
from store import audit, callbacks, incidents
from store.callback_deliveries import (
    INTERRUPTED,
    Delivery,
    DeliveryStatus,
    begin_attempt,
    claim_due,
    finish_attempt,
    finish_without_attempt,
)
from store.db import Connection, Pool
from store.projects import get_project
from store.snapshots import get_snapshot
from topics import RepairRequest
from topics.declared import to_json
from topics.fields import format_timestamp

log = logging.getLogger(__name__)

ATTEMPTS = Counter("sendpromptly_callback_attempts_total", "Repair callback attempts, by what came of them",
                   ["outcome"])
LATENCY = Histogram("sendpromptly_callback_latency_seconds",
                    "Time from sending a repair callback to its answer",
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

ACTOR = "system:callbacks"
# What the metric and the audit call each delivery state after an attempt.
OUTCOME_LABELS = {DeliveryStatus.PENDING: "retrying", DeliveryStatus.DELIVERED: "delivered",
                  DeliveryStatus.FAILED: "failed", DeliveryStatus.EXHAUSTED: "exhausted"}


@dataclass(frozen=True)
class Target:
    url: str
    secrets: list[str]
    payload: dict[str, Any] | None


def repair_body(repair: RepairRequest, attempt: int, nonce: str,
                payload: dict[str, Any] | None) -> RepairCallbackBody:
    return RepairCallbackBody(replay_id=repair.replay_id, attempt=attempt, nonce=nonce,
                          incident_id=repair.incident_id, project_id=repair.project_id, mode=repair.mode,
                          reference=repair.reference, event_type=repair.event_type,
                          effect_type=repair.effect_type, requested_at=repair.requested_at, payload=payload)


class CallbackDeliverer:
    """The delivery loop of one callbacks-sink process; replicas share the work through the table."""

    def __init__(self, pool: Pool, settings: Settings):
        self._pool = pool
        self._settings = settings
        self._secrets_keyring = Keyring.parse("SENDPROMPTLY_SECRET_KEYS", settings.secret_keys)
        # Optional: without snapshot keys no project can have snapshots to send.
        self._snapshot_keyring = (Keyring.parse("SENDPROMPTLY_SNAPSHOT_KEYS", settings.snapshot_keys)
                                  if settings.snapshot_keys else None)
        self._rng = random.Random()  # noqa: S311 (retry jitter, not a secret)
        # Longer than an attempt can take (the setting's lower bound sees to it): a delivery
        # leased by a process that died is taken again after this, by whichever replica claims it.
        self._loop = ClaimLoop(
            pool, name="callback delivery", lease=timedelta(seconds=settings.callback_lease_seconds),
            claim=claim_due,
            attempt=self._deliver, record_interrupted=self._record_interrupted,
            describe=lambda delivery: f"replay {delivery.replay_id}: delivery")
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        """A delivery was recorded: look now rather than at the next poll."""
        self._loop.wake()

    async def run(self) -> None:
        async with outbound_session(allow_private=self._settings.allow_private_targets,
                                    timeout_seconds=ATTEMPT_TIMEOUT_SECONDS) as self._session:
            await self._loop.run()

    async def _record_interrupted(self, delivery: Delivery) -> None:
        await self._record(delivery.request, delivery.attempts, INTERRUPTED, retry_after=None)

    async def _deliver(self, delivery: Delivery, leased_until: float) -> None:
        session = self._session
        if session is None:
            raise RuntimeError("the callback sender delivers only while run() holds its HTTP session")
        repair = delivery.request
        async with self._pool.connection() as conn:
            target = await self._target(conn, repair)
        if isinstance(target, str):
            await self._give_up(repair, target)
            return
        number = delivery.attempts + 1
        nonce = secrets.token_urlsafe(16)
        raw_body = to_json(repair_body(repair, number, nonce, target.payload))
        attempted_at = datetime.now(UTC)
        if not await self._begin(repair, number, nonce, attempted_at):
            return
        headers = signed_headers(repair.replay_id, int(attempted_at.timestamp()), raw_body, target.secrets)
        outcome, retry_after = await post_signed(session, target.url, raw_body, headers)
        if outcome.latency_ms is not None:
            LATENCY.observe(outcome.latency_ms / 1000)
        # Tried while the lease lasts; after it, the next claim records the attempt as interrupted.
        await retry_transient(partial(self._record, repair, number, outcome, retry_after=retry_after),
                              what=f"recording replay {repair.replay_id} attempt {number}",
                              deadline=leased_until)

    async def _begin(self, repair: RepairRequest, number: int, nonce: str, attempted_at: datetime) -> bool:
        """Record the attempt before its request goes out, so that no request is ever sent that
        the record does not show; False when another process began it first."""
        async with self._pool.connection() as conn, conn.transaction():
            if not await begin_attempt(conn, repair.replay_id, number, nonce, attempted_at):
                log.warning("replay %s attempt %d was begun by another process; leaving it to that one",
                            repair.replay_id, number)
                return False
            await incidents.record_replay_attempts(conn, repair.replay_id, number)
        return True

    def _next_state(self, number: int, http_status: int | None,
                    retry_after: float | None) -> tuple[DeliveryStatus, datetime | None]:
        match verdict(http_status):
            case Verdict.DELIVERED:
                return DeliveryStatus.DELIVERED, None
            case Verdict.FAIL:
                return DeliveryStatus.FAILED, None
        delay = retry_delay(self._settings.callback_retry_schedule, number, retry_after, self._rng)
        if delay is None:
            return DeliveryStatus.EXHAUSTED, None
        return DeliveryStatus.PENDING, datetime.now(UTC) + timedelta(seconds=delay)

    async def _target(self, conn: Connection, repair: RepairRequest) -> Target | str:
        """Where and how to call, or why there is nothing to call."""
        project = await get_project(conn, repair.project_id)
        if project is None:
            return "the project has no repair callback URL"
        target = signing_target(project, await callbacks.active_secrets(conn, project.id),
                                self._secrets_keyring)
        if isinstance(target, str):
            return target
        # A project that turned snapshots off sends none, even one stored before (the purge takes it).
        payload = await self._payload(conn, repair) if project.snapshots_enabled else None
        return Target(target.url, target.secrets, payload)

    async def _payload(self, conn: Connection, repair: RepairRequest) -> dict[str, Any] | None:
        snapshot = await get_snapshot(conn, repair.project_id, repair.reference)
        if snapshot is None:
            return None
        if self._snapshot_keyring is None:
            log.warning("replay %s: a snapshot exists but SENDPROMPTLY_SNAPSHOT_KEYS is not set; "
                        "calling without payload", repair.replay_id)
            return None
        try:
            return open_snapshot(self._snapshot_keyring, repair.project_id, repair.reference, snapshot)
        except DecryptionError as exc:
            log.warning("replay %s: the snapshot does not open (%s); calling without payload",
                        repair.replay_id, exc)
            return None

    async def _record(self, repair: RepairRequest, number: int, outcome: Outcome, *,
                      retry_after: float | None) -> None:
        """The outcome of begun attempt ``number``, the delivery's next state, and its audit."""
        status, next_attempt_at = self._next_state(number, outcome.http_status, retry_after)
        async with self._pool.connection() as conn, conn.transaction():
            if not await finish_attempt(conn, repair.replay_id, number, outcome, status=status,
                                        next_attempt_at=next_attempt_at):
                log.warning("replay %s attempt %d has an outcome already (its lease ran out and it was "
                            "recorded as interrupted); dropping this one", repair.replay_id, number)
                return
            data = {"replay_id": repair.replay_id, "attempt": number,
                    "http_status": outcome.http_status, "latency_ms": outcome.latency_ms,
                    "error": outcome.error, "result": OUTCOME_LABELS[status]}
            if next_attempt_at is not None:
                data["next_attempt_at"] = format_timestamp(next_attempt_at)
            await audit.record(conn, project_id=repair.project_id, actor=ACTOR, action="callback.attempted",
                               target=repair.incident_id, data=data)
            if status in (DeliveryStatus.FAILED, DeliveryStatus.EXHAUSTED):
                await self._record_failure(conn, repair, status, outcome.problem or "")
        ATTEMPTS.labels(OUTCOME_LABELS[status]).inc()
        log.info("replay %s attempt %d: %s (%s)", repair.replay_id, number, OUTCOME_LABELS[status],
                 outcome.problem or f"HTTP {outcome.http_status}")

    async def _give_up(self, repair: RepairRequest, reason: str) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await finish_without_attempt(conn, repair.replay_id, reason)
            await self._record_failure(conn, repair, DeliveryStatus.FAILED, reason)
        log.warning("replay %s: not called: %s", repair.replay_id, reason)

    async def _record_failure(self, conn: Connection, repair: RepairRequest, status: DeliveryStatus,
                              reason: str) -> None:
        """The replay's outcome is ``failed``; the audit says why (``callback.failed`` or
        ``callback.exhausted``). Alerts pick exhausted deliveries up from ``callback_deliveries``."""
        await incidents.record_replay_outcome(conn, repair.project_id, repair.reference, repair.replay_id,
                                              incidents.ReplayOutcome.FAILED)
        await audit.record(conn, project_id=repair.project_id, actor=ACTOR, action=f"callback.{status}",
                           target=repair.incident_id, data={"replay_id": repair.replay_id, "reason": reason})
