"""Repair callbacks on the real stack: an operator reprocesses an incident and the
callbacks sink calls a real HTTP receiver on loopback, signed, retried, recorded on the incident."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from api_gateway import openapi
from harness.processes import free_port
from harness.stack import SINK_NAMES, Stack
from store.db import open_pool
from store.snapshots import get_snapshot
from tests.conftest import ProjectKey
from tests.support.api import Api, eventually
from tests.support.example_receiver import running_example_receiver
from tests.support.operator_actions import incident_path, open_incident, reprocess, set_callback

pytestmark = pytest.mark.e2e

RETRY_SCHEDULE = "2,2"
# The shortest lease there is: a request cut off by a crash is made again after it.
LEASE_SECONDS = 15


@pytest.fixture
def stack(stack_factory) -> Stack:
    return stack_factory(sinks=SINK_NAMES, SENDPROMPTLY_CALLBACK_RETRY_SCHEDULE=RETRY_SCHEDULE,
                         SENDPROMPTLY_CALLBACK_LEASE_SECONDS=str(LEASE_SECONDS))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.body)

    def assert_as_documented(self, webhook: str) -> None:
        """The headers and the body are what the API reference's ``webhook`` says receivers get."""
        for header in openapi.document()["webhooks"][webhook]["post"]["parameters"]:
            assert re.fullmatch(header["schema"].get("pattern", ".+"), self.headers[header["name"]]), header
        assert_documented_body(webhook, self.doc)


def assert_documented_body(webhook: str, body: dict[str, Any]) -> None:
    """``body`` keeps to the schema the API reference gives ``webhook``'s body."""
    doc = openapi.document()
    schema = doc["webhooks"][webhook]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema_rs.Draft202012Validator({**doc, **schema}).validate(body)


@dataclass
class Receiver:
    """Records every request and answers from ``script`` (status, headers) in turn, then 200. The
    first ``hold`` requests get no answer until the test is over: a receiver that hangs."""

    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recorder = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        recorder.received.append(Received(request.path, dict(request.headers), await request.read()))
        if len(recorder.received) <= recorder.hold:
            await recorder.released.wait()
        status, headers = recorder.script.pop(0) if recorder.script else (200, {})
        return web.Response(status=status, headers=headers, text="")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield recorder
    recorder.released.set()
    await runner.cleanup()


async def replay_of(operator_api: Api, incident_id: str) -> dict[str, Any]:
    (replay,) = (await operator_api.get(incident_path(incident_id)))[1]["replays"]
    return replay


async def requests_received(receiver: Receiver, count: int, timeout: float = 20) -> list[Received]:
    async def probe() -> int:
        return len(receiver.received)

    await eventually(probe, lambda n: n >= count, timeout=timeout)
    return receiver.received


def statuses(replay: dict[str, Any]) -> list[int | None]:
    """The HTTP status of each callback attempt the incident shows (None: no answer, or none yet)."""
    return [attempt.get("http_status") for attempt in replay["callback_attempts"]]


async def test_a_callback_is_signed_with_both_secrets_retried_and_recorded(
        api: Api, operator_api: Api, project: ProjectKey, receiver: Receiver) -> None:
    old_secret = await set_callback(operator_api, project.project_id, receiver.url + "/repair")
    status, rotated, _ = await operator_api.send(
        "POST", f"/api/v1/projects/{project.project_id}/repair-callback/rotate-secret")
    assert status == 200
    new_secret = rotated["signing_secret"]
    incident = await open_incident(api, "inv_cb_retry")
    receiver.script = [(500, {})]

    replay_id = await reprocess(operator_api, incident["id"])
    first, second = await requests_received(receiver, 2)

    for request in (first, second):
        request.assert_as_documented("repairRequested")
        assert request.path == "/repair" and request.headers["Content-Type"] == "application/json"
        assert request.headers["webhook-id"] == replay_id
        assert len(request.headers["webhook-signature"].split(" ")) == 2  # rotation: both signatures
        for secret in (old_secret, new_secret):
            assert Webhook(secret).verify(request.body, request.headers) == request.doc
    assert [r.doc["attempt"] for r in (first, second)] == [1, 2]
    assert first.doc["nonce"] != second.doc["nonce"]
    assert {k: v for k, v in first.doc.items() if k not in ("attempt", "nonce", "requested_at")} == {
        "type": "repair.requested", "replay_id": replay_id, "incident_id": incident["id"],
        "project_id": project.project_id, "mode": "test", "reference": "inv_cb_retry",
        "event_type": "invoice.paid", "effect_type": "grant_access"}  # no snapshot, so no payload

    # Both attempts are on the incident, recorded and audited; delivered is not yet an outcome.
    replay = await eventually(partial(replay_of, operator_api, incident["id"]),
                              lambda r: statuses(r) == [500, 200])
    assert replay["attempts"] == 2
    assert "outcome" not in replay
    # The audit log is appended by the audit sink, from the topic: wait for it to catch up.
    _, audit = await eventually(
        lambda: operator_api.get(f"/api/v1/projects/{project.project_id}/audit-log"),
        lambda answer: sum(e["action"] == "callback.attempted" for e in answer[1]["items"]) >= 2)
    attempted = [e["data"] for e in audit["items"] if e["action"] == "callback.attempted"]
    assert [(a["attempt"], a["http_status"], a["result"]) for a in reversed(attempted)] == [
        (1, 500, "retrying"), (2, 200, "delivered")]
    assert all(a["latency_ms"] >= 0 and "payload" not in a for a in attempted)

    # A failed result for the replay records it and leaves the incident open.
    assert (await api.result("inv_cb_retry", "failed", replay_id=replay_id))[0] == 202
    await eventually(lambda: replay_of(operator_api, incident["id"]), lambda r: r.get("outcome") == "failed")
    assert (await operator_api.get(incident_path(incident["id"])))[1]["status"] == "open"
    assert len(receiver.received) == 2


async def send_test_callback(operator_api: Api, project_id: str, idempotency_key: str | None = None
                             ) -> tuple[int, dict[str, Any], dict[str, str]]:
    return await operator_api.send("POST", f"/api/v1/projects/{project_id}/repair-callback/test",
                                   idempotency_key=idempotency_key)


async def test_a_test_callback_is_signed_like_a_repair_and_answers_the_receivers_status_and_latency(
        operator_api: Api, project: ProjectKey, receiver: Receiver) -> None:
    status, refused, _ = await send_test_callback(operator_api, project.project_id)
    assert status == 409 and "no repair callback URL" in refused["detail"]

    old_secret = await set_callback(operator_api, project.project_id, receiver.url + "/repair")
    _, rotated, _ = await operator_api.send(
        "POST", f"/api/v1/projects/{project.project_id}/repair-callback/rotate-secret")
    status, tested, _ = await send_test_callback(operator_api, project.project_id, "test-cb-1")
    assert status == 200, tested
    assert (tested["http_status"], tested["error"], tested["verdict"]) == (200, None, "delivered")
    assert tested["latency_ms"] >= 0 and tested["url"] == receiver.url + "/repair"
    (request,) = receiver.received
    # Signed exactly like a repair: Standard Webhooks, both secrets of the rotation.
    assert request.headers["webhook-id"] == tested["replay_id"]
    assert tested["replay_id"].startswith("rpl_test_")
    for secret in (old_secret, rotated["signing_secret"]):
        assert Webhook(secret).verify(request.body, request.headers) == request.doc
    request.assert_as_documented("repairTest")
    assert request.doc["test"] is True and request.doc["type"] == "repair.test"
    assert not {"reference", "incident_id", "effect_type"} & request.doc.keys()  # nothing to rerun

    # Idempotent: the same key shows the stored answer and sends nothing.
    status, again, headers = await send_test_callback(operator_api, project.project_id, "test-cb-1")
    assert (status, again, headers.get("Idempotent-Replayed")) == (200, tested, "true")
    assert len(receiver.received) == 1

    # A receiver's error is what the test reports (a 200 from SendPromptly), and so is no answer.
    receiver.script = [(500, {})]
    status, failing, _ = await send_test_callback(operator_api, project.project_id)
    assert status == 200 and (failing["http_status"], failing["verdict"]) == (500, "retry")
    await set_callback(operator_api, project.project_id, f"http://127.0.0.1:{free_port()}/repair")
    status, unreachable, _ = await send_test_callback(operator_api, project.project_id)
    assert status == 200 and unreachable["http_status"] is None and unreachable["verdict"] == "retry"
    assert "ClientConnectorError" in unreachable["error"]

    _, audit = await eventually(
        lambda: operator_api.get(f"/api/v1/projects/{project.project_id}/audit-log"),
        lambda answer: sum(e["action"] == "callback.tested" for e in answer[1]["items"]) >= 3)
    tests = [e["data"] for e in audit["items"] if e["action"] == "callback.tested"]
    assert [t["http_status"] for t in tests] == [None, 500, 200]  # newest first


async def test_a_4xx_fails_at_once_and_a_redirect_is_not_followed(
        api: Api, operator_api: Api, project: ProjectKey, receiver: Receiver) -> None:
    await set_callback(operator_api, project.project_id, receiver.url + "/repair")
    for reference, answer in (("inv_cb_400", (400, {})),
                              ("inv_cb_307", (307, {"Location": receiver.url + "/elsewhere"}))):
        incident = await open_incident(api, reference)
        receiver.script = [answer]
        await reprocess(operator_api, incident["id"])
        replay = await eventually(partial(replay_of, operator_api, incident["id"]),
                                  lambda r: r.get("outcome") == "failed")
        assert replay["attempts"] == 1, reference
        assert statuses(replay) == [answer[0]]
    await asyncio.sleep(3)  # longer than the first retry delay: nothing more comes
    assert [r.path for r in receiver.received] == ["/repair", "/repair"]


async def test_a_pending_retry_survives_kill_9_of_the_sink_and_is_delivered_once(
        api: Api, operator_api: Api, project: ProjectKey, receiver: Receiver, stack: Stack) -> None:
    await set_callback(operator_api, project.project_id, receiver.url + "/repair")
    incident = await open_incident(api, "inv_cb_kill")
    receiver.script = [(503, {"Retry-After": "1"})]
    replay_id = await reprocess(operator_api, incident["id"])
    await eventually(partial(replay_of, operator_api, incident["id"]), lambda r: statuses(r) == [503])

    sink = stack.sinks["callbacks"]
    sink.kill()
    await asyncio.sleep(3)  # the retry falls due while no sink runs
    assert len(receiver.received) == 1
    sink.start()
    await asyncio.to_thread(sink.wait_ready, stack.sink_urls["callbacks"] + "/readyz")

    await requests_received(receiver, 2)
    await eventually(lambda: replay_of(operator_api, incident["id"]), lambda r: r["attempts"] == 2)
    await asyncio.sleep(3)
    assert [r.headers["webhook-id"] for r in receiver.received] == [replay_id, replay_id]


async def test_an_attempt_cut_off_by_kill_9_is_recorded_as_interrupted_and_made_again(
        api: Api, operator_api: Api, project: ProjectKey, receiver: Receiver, stack: Stack) -> None:
    secret = await set_callback(operator_api, project.project_id, receiver.url + "/repair")
    incident = await open_incident(api, "inv_cb_cut")
    receiver.hold = 1
    replay_id = await reprocess(operator_api, incident["id"])
    (first,) = await requests_received(receiver, 1)

    # The request is out and unanswered, and the incident already shows the attempt, under way.
    (under_way,) = (await replay_of(operator_api, incident["id"]))["callback_attempts"]
    assert under_way.keys() == {"attempt", "attempted_at"} and under_way["attempt"] == 1

    sink = stack.sinks["callbacks"]
    sink.kill()
    sink.start()
    await asyncio.to_thread(sink.wait_ready, stack.sink_urls["callbacks"] + "/readyz")

    # Once the lease runs out, the retry delay after it: the same replay again, as attempt 2.
    _, second = await requests_received(receiver, 2, timeout=LEASE_SECONDS + 30)
    for request in (first, second):
        assert request.headers["webhook-id"] == replay_id
        assert Webhook(secret).verify(request.body, request.headers) == request.doc
    assert [r.doc["attempt"] for r in (first, second)] == [1, 2]
    assert first.doc["nonce"] != second.doc["nonce"]

    replay = await eventually(partial(replay_of, operator_api, incident["id"]),
                              lambda r: statuses(r) == [None, 200])
    interrupted, delivered = replay["callback_attempts"]
    assert replay["attempts"] == 2
    assert interrupted["attempt"] == 1 and "finished_at" in interrupted and "latency_ms" not in interrupted
    assert interrupted["error"] == "no outcome recorded: the callbacks sink stopped during the attempt"
    assert delivered["attempt"] == 2 and delivered["latency_ms"] >= 0 and "error" not in delivered
    await asyncio.sleep(3)  # longer than a retry delay: nothing more comes
    assert len(receiver.received) == 2


async def test_the_example_receiver_reruns_the_effect_and_resolves_the_incident(
        api: Api, operator_api: Api, project: ProjectKey, stack: Stack) -> None:
    status, _, _ = await operator_api.send("PATCH", f"/api/v1/projects/{project.project_id}",
                                           {"snapshots_enabled": True})
    assert status == 200
    rerun: list[dict[str, Any]] = []

    async def grant_access(callback: dict[str, Any]) -> None:
        rerun.append(callback)

    # The secret is known only once the URL is saved; the app reads it from this list.
    secrets: list[str] = []
    async with running_example_receiver(secrets=secrets, sendpromptly_url=stack.base_url,
                                        api_key=project.api_key, effect=grant_access) as url:
        secrets.append(await set_callback(operator_api, project.project_id, url))
        # The example verifies a test callback and answers 2xx without rerunning anything.
        status, tested, _ = await send_test_callback(operator_api, project.project_id)
        assert status == 200 and tested["http_status"] == 200, tested
        assert (await api.receipt("inv_cb_example", payload={"customer": "cus_42", "plan": "pro"}))[0] == 202
        assert (await api.result("inv_cb_example", "failed"))[0] == 202
        _, flow = await eventually(lambda: api.flow("inv_cb_example"), lambda answer: "incident" in answer[1])
        incident_id = flow["incident"]["id"]

        replay_id = await reprocess(operator_api, incident_id)
        resolved = await eventually(lambda: operator_api.get(incident_path(incident_id)),
                                    lambda answer: answer[1]["status"] == "resolved"
                                    and answer[1]["replays"][0].get("outcome") == "succeeded")
        assert resolved[1]["resolution"] == "outcome_succeeded"
        (replay,) = resolved[1]["replays"]
        assert (replay["replay_id"], replay["attempts"]) == (replay_id, 1)
        (callback,) = rerun  # the test callback reran nothing
        assert_documented_body("repairRequested", callback)  # with its payload
        assert callback["payload"] == {"customer": "cus_42", "plan": "pro"}


async def test_turning_snapshots_off_stops_storing_and_sending_them(
        api: Api, operator_api: Api, project: ProjectKey, receiver: Receiver, stack: Stack,
        database_url: str) -> None:
    base = f"/api/v1/projects/{project.project_id}"
    await set_callback(operator_api, project.project_id, receiver.url + "/repair")
    assert (await operator_api.send("PATCH", base, {"snapshots_enabled": True}))[0] == 200
    # Stored while on: a snapshot the callbacks sink keeps.
    assert (await api.receipt("inv_snap_kept", payload={"plan": "pro"}))[0] == 202
    await eventually(partial(_snapshot_of, database_url, project.project_id, "inv_snap_kept"),
                     lambda found: found is not None)
    # Sealed while on, consumed once off: the sink is away while the project turns snapshots off.
    sink = stack.sinks["callbacks"]
    sink.stop()
    assert (await api.receipt("inv_snap_late", payload={"plan": "pro"}))[0] == 202
    assert (await operator_api.send("PATCH", base, {"snapshots_enabled": False}))[0] == 200
    sink.start()
    await asyncio.to_thread(sink.wait_ready, stack.sink_urls["callbacks"] + "/readyz")

    for reference in ("inv_snap_kept", "inv_snap_late"):
        assert (await api.result(reference, "failed"))[0] == 202
        _, flow = await eventually(partial(api.flow, reference), lambda answer: "incident" in answer[1])
        await reprocess(operator_api, flow["incident"]["id"])
    first, second = await requests_received(receiver, 2)
    assert "payload" not in first.doc and "payload" not in second.doc  # the stored one is not sent
    await asyncio.sleep(1)  # the sink had the late receipt before these repairs; give it a moment more
    assert await _snapshot_of(database_url, project.project_id, "inv_snap_late") is None


async def _snapshot_of(database_url: str, project_id: str, reference: str) -> object:
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            return await get_snapshot(conn, project_id, reference)
    finally:
        await pool.close()
