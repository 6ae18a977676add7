"""The bodies of the requests we send to a project's repair callback, declared once: the callbacks
sink sends `RepairCallbackBody`, the gateway's "send test callback" sends `TestCallbackBody`, and the
OpenAPI document's `webhooks` describe both from these declarations (which receivers read)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from topics.declared import Declared
from topics.fields import Mode, ProjectId, Reference, ReplayId, Timestamp, TypeName

# Says "test" in the id a receiver logs and keys its work on; never an id a repair could have.
TEST_REPLAY_PREFIX = "rpl_test_"

Attempt = Annotated[int, Meta(ge=1, description=(
    "1 on the first attempt, one more on each retry or resend of the same replay_id"))]
Nonce = Annotated[str, Meta(min_length=1, description=(
    "new on every attempt; refuse a nonce seen before (a captured request played again)"))]


class RepairCallbackBody(Declared, frozen=True, kw_only=True, tag_field="type", tag="repair.requested"):
    """Rerun `effect_type` for `reference`: an operator reprocessed the incident of a payment whose
    effect was never applied. Apply it once per `replay_id` (the `webhook-id` header): the same
    replay may come more than once, each time with the next `attempt` and a new `nonce`."""

    replay_id: Annotated[ReplayId, Meta(description=(
        "the replay this request carries, equal to the webhook-id header; your idempotency key"))]
    attempt: Attempt
    nonce: Nonce
    incident_id: Annotated[str, Meta(description="the incident being repaired (inc_...)")]
    project_id: ProjectId
    mode: Mode
    reference: Annotated[Reference, Meta(description="the payment reference you sent with the receipt")]
    event_type: Annotated[TypeName, Meta(description="the receipt's event_type (what was paid)")]
    effect_type: Annotated[TypeName, Meta(description="the effect to rerun, as the receipt named it")]
    requested_at: Annotated[Timestamp, Meta(description="when the operator asked for the repair")]
    payload: Annotated[dict[str, Any] | None, Meta(description=(
        "the receipt's payload, only when the project stores payload snapshots and this one is "
        "still kept (30 days)"))] = None


class TestCallbackBody(Declared, frozen=True, kw_only=True, tag_field="type", tag="repair.test"):
    """A test from the console or `sendpromptly callback test`, signed exactly as a repair: verify
    it, rerun nothing, answer 2xx. It names no incident, reference or effect."""

    test: Literal[True]
    replay_id: Annotated[str, Meta(pattern=f"^{TEST_REPLAY_PREFIX}[0-9a-f]+$", description=(
        f"a test replay id ({TEST_REPLAY_PREFIX}...), equal to the webhook-id header"))]
    attempt: Attempt
    nonce: Nonce
    project_id: ProjectId
    mode: Mode
    requested_at: Annotated[Timestamp, Meta(description="when the test was sent")]
