"""A flow is one cycle of (project, mode, reference), end to end on the real stack: a reference
used again after it was applied starts a cycle of its own, whose missing result opens its own
incident; test and live traffic of one reference never join; closed flows are forgotten after the
retention (table, changelog, read model), open incidents never."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from harness.kafka import latest_values
from harness.services import Services
from harness.stack import Stack
from store.db import Pool
from store.projects import update_project
from tests.conftest import ProjectKey
from tests.support.api import Api, eventually, flow_is
from topics import flow_key

pytestmark = pytest.mark.e2e

Answer = tuple[int, dict[str, Any]]


def reference(kind: str) -> str:
    return f"{kind}_{uuid.uuid4().hex[:8]}"


async def flow(api: Api, ref: str, **params: object) -> Answer:
    query = urlencode(params)
    return await api.get(f"/api/v1/flows/{ref}" + (f"?{query}" if query else ""))


async def test_a_reference_used_again_after_it_was_applied_starts_a_cycle_that_opens_its_own_incident(
        api: Api) -> None:
    ref = reference("sub")
    assert (await api.receipt(ref, timeout_seconds=60))[0] == 202
    assert (await api.result(ref))[0] == 202
    _, first = await eventually(lambda: flow(api, ref), flow_is("applied"))
    assert first["cycle"] == 1

    status, accepted = await api.receipt(ref, timeout_seconds=3)
    assert status == 202 and accepted["status"] == "accepted", accepted
    assert "deadline" not in accepted, "the 202 states no deadline the agents may not enforce"
    _, second = await eventually(lambda: flow(api, ref), flow_is("pending", cycle=2))

    # A repeat while the cycle is open is counted on it and moves nothing.
    assert (await api.receipt(ref, timeout_seconds=600))[0] == 202
    _, counted = await eventually(lambda: flow(api, ref), lambda a: a[1].get("receipts") == 2)
    assert (counted["cycle"], counted["deadline"]) == (2, second["deadline"])

    _, opened = await eventually(lambda: flow(api, ref), flow_is("incident", cycle=2), timeout=30)
    assert opened["incident"]["reason"] == "timeout"
    _, cycle_one = await flow(api, ref, cycle=1)
    assert cycle_one["status"] == "applied" and "incident_id" not in cycle_one, (
        "the first cycle stays applied")

    # Results join the open cycle: a late success resolves the second cycle's incident.
    assert (await api.result(ref))[0] == 202
    _, resolved = await eventually(lambda: flow(api, ref), flow_is("resolved", cycle=2))
    assert resolved["incident_id"] == opened["incident_id"]


async def test_test_and_live_traffic_of_one_reference_never_join(api: Api, project: ProjectKey,
                                                                 pool: Pool) -> None:
    ref = reference("ord")
    assert (await api.receipt(ref, timeout_seconds=4))[0] == 202
    await eventually(lambda: flow(api, ref, mode="test"), flow_is("pending"))

    async with pool.connection() as conn:
        await update_project(conn, project.project_id, {"mode": "live"})
    # The gateway caches projects for a moment: once it looks flows up in live mode by default
    # (there is none), it stamps signals live too.
    await eventually(lambda: flow(api, ref), lambda a: a[0] == 404)
    status, accepted = await api.result(ref)
    assert (status, accepted["mode"]) == (202, "live")

    _, opened = await eventually(lambda: flow(api, ref, mode="test"), flow_is("incident"), timeout=30)
    assert (opened["incident"]["reason"], opened["incident"]["mode"]) == ("timeout", "test"), (
        "the live success did not apply the test flow")
    assert (await flow(api, ref, mode="live"))[0] == 404, "a live result alone makes no flow"

    # The live receipt joins the live result that waited for it; the test incident stays open.
    assert (await api.receipt(ref, timeout_seconds=600))[0] == 202
    await eventually(lambda: flow(api, ref, mode="live"), flow_is("applied"))
    assert (await flow(api, ref, mode="test"))[1]["status"] == "incident"


async def test_closed_flows_are_forgotten_after_the_retention_and_an_open_incident_never(
        stack_factory: Any, project: ProjectKey, http: aiohttp.ClientSession, services: Services,
        topic_prefix: str) -> None:
    stack: Stack = stack_factory(SENDPROMPTLY_FLOW_RETENTION_DAYS=str(2 / 86400))  # two seconds
    api = Api(http, stack.base_url, project.api_key)
    paid, failing = reference("paid"), reference("failing")
    for ref in (paid, failing):
        assert (await api.receipt(ref, timeout_seconds=600))[0] == 202
    assert (await api.result(paid))[0] == 202
    assert (await api.result(failing, "failed", detail="db locked"))[0] == 202
    await eventually(lambda: flow(api, failing), flow_is("incident"))

    await eventually(lambda: flow(api, paid), lambda a: a[0] == 404, timeout=30)
    changelog = await latest_values(services.kafka_bootstrap,
                                    f"{topic_prefix}sendpromptly-agents-flow-state-changelog")
    assert changelog[flow_key(project.project_id, paid)] is None, "a tombstone in the changelog"
    assert changelog[flow_key(project.project_id, failing)] is not None

    # Twice the retention later (a sweep a second) the open incident's flow is still all there.
    await asyncio.sleep(4)
    code, still = await flow(api, failing)
    assert (code, still["status"], still["detail"]) == (200, "incident", "db locked")
    # A forgotten reference used again starts afresh, and is watched.
    assert (await api.receipt(paid, timeout_seconds=600))[0] == 202
    await eventually(lambda: flow(api, paid), flow_is("pending", cycle=1))
