"""The steady, bounded load: flows started at a fixed rate (open loop, so a slow stack does not slow
the offered load down), each a receipt, then its result if planned, then a reprocess of its
incident if planned. Stops by itself: no flow starts after ``stop`` or past the plan."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tests.chaos.client import RetryingClient
from tests.chaos.ground_truth import FlowPlan, FlowRecord, Outcome

INCIDENT_POLL_SECONDS = 0.5
# How long the flows in progress when the load stops may still retry: the slowest recovery seen
# (Kafka back after 20 s) with room to spare.
RETRY_GRACE_SECONDS = 45.0


@dataclass(frozen=True)
class Credentials:
    api_key: str
    operator_token: str


class LoadGenerator:
    def __init__(self, client: RetryingClient, credentials: Credentials, plans: list[FlowPlan],
                 flows_per_second: float):
        self._client = client
        self._credentials = credentials
        self._plans = plans
        self._interval = 1.0 / flows_per_second
        self.records: list[FlowRecord] = []
        self.stop = asyncio.Event()

    async def run(self) -> list[FlowRecord]:
        """Start flows until ``stop`` is set or the plan runs out; return once every flow finished."""
        tasks: list[asyncio.Task[None]] = []
        started = time.monotonic()
        for n, plan in enumerate(self._plans):
            if self.stop.is_set():
                break
            record = FlowRecord(plan)
            self.records.append(record)
            tasks.append(asyncio.create_task(self._flow(record)))
            delay = started + (n + 1) * self._interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self._client.give_up_at = time.time() + RETRY_GRACE_SECONDS
        await asyncio.gather(*tasks)
        return self.records

    async def _flow(self, record: FlowRecord) -> None:
        plan, api_key = record.plan, self._credentials.api_key
        record.receipt = await self._client.post(
            "/api/v1/receipt", api_key, f"{plan.reference}-receipt",
            {"reference": plan.reference, "event_type": "invoice.paid", "effect_type": "grant_access",
             "timeout_seconds": plan.timeout_seconds})
        if not record.receipt.accepted or plan.outcome is Outcome.NONE:
            return
        await asyncio.sleep(plan.result_delay)
        record.result = await self._client.post(
            "/api/v1/result", api_key, f"{plan.reference}-result",
            {"reference": plan.reference, "status": plan.outcome.value})
        if record.result.accepted and plan.reprocess:
            incident_id = await self._open_incident(plan.reference)
            if incident_id is not None:
                record.reprocess = await self._client.post(
                    f"/api/v1/incidents/{incident_id}/reprocess", self._credentials.operator_token,
                    f"{plan.reference}-reprocess")

    async def _open_incident(self, reference: str) -> str | None:
        """The id of the flow's incident once the read model shows it (None if it never does in
        this run: the reconciler then reports the flow, not this client)."""
        while not self._client.gave_up:
            status, flow = await self._client.get(f"/api/v1/flows/{reference}", self._credentials.api_key)
            if status == 200 and "incident" in flow:
                return str(flow["incident"]["id"])
            await asyncio.sleep(INCIDENT_POLL_SECONDS)
        return None
