"""The flow state machine (DESIGN.md §4), without Kafka: every rule, then properties over any order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agents import flow as machine
from agents.flow import Flow, FlowState, IncidentOpened, IncidentResolved, Status, Transition
from topics import Receipt, Result

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PROJECT = "prj_test"


def receipt(at: datetime = T0, timeout_seconds: int | None = None, key: str = "r1") -> Receipt:
    return Receipt(project_id=PROJECT, idempotency_key=key, reference="inv_1", event_type="invoice.paid",
                   effect_type="grant_access", received_at=at, timeout_seconds=timeout_seconds)


def result(status: str, at: datetime, replay_id: str | None = None) -> Result:
    return Result(project_id=PROJECT, idempotency_key=f"res-{at.isoformat()}", reference="inv_1",
                  status=status, received_at=at, replay_id=replay_id,
                  detail=f"failed at {at:%H:%M:%S}" if status == "failed" else None)


def flow_of(state: FlowState) -> Flow:
    assert state.flow is not None, "no flow yet"
    return state.flow


def start(timeout_seconds: int | None = None, minutes: int = 30) -> FlowState:
    return machine.on_receipt(FlowState(), receipt(timeout_seconds=timeout_seconds), mode="test",
                              project_timeout_minutes=minutes, now=T0).state


def test_it_starts_pending_with_the_projects_timeout() -> None:
    step = machine.on_receipt(FlowState(), receipt(), mode="live", project_timeout_minutes=30, now=T0)
    assert step.state.flow is not None
    assert flow_of(step.state).status is Status.PENDING
    assert flow_of(step.state).deadline == T0 + timedelta(minutes=30)
    assert flow_of(step.state).mode == "live"
    assert [type(e) for e in step.effects] == [Transition]


def test_a_per_event_timeout_overrides_the_project() -> None:
    assert flow_of(start(timeout_seconds=5)).deadline == T0 + timedelta(seconds=5)


def test_a_repeated_receipt_does_not_move_the_deadline() -> None:
    state = start()
    later = machine.on_receipt(state, receipt(at=T0 + timedelta(minutes=10), key="r2"), mode="test",
                               project_timeout_minutes=30, now=T0 + timedelta(minutes=10))
    assert later.state == state and later.effects == []


def test_success_before_the_deadline_applies_it() -> None:
    step = machine.on_result(start(), result("succeeded", T0 + timedelta(minutes=1)),
                             now=T0 + timedelta(minutes=1))
    assert flow_of(step.state).status is Status.APPLIED
    assert flow_of(step.state).applied_at == T0 + timedelta(minutes=1)
    assert [type(e) for e in step.effects] == [Transition]


def test_a_failed_result_opens_an_incident() -> None:
    step = machine.on_result(start(), result("failed", T0 + timedelta(seconds=1)),
                             now=T0 + timedelta(seconds=1))
    flow = flow_of(step.state)
    assert flow.status is Status.INCIDENT and flow.incident_reason == "failed_outcome"
    assert flow.incident_id == machine.incident_id_for(PROJECT, "inv_1")
    assert [type(e) for e in step.effects] == [Transition, IncidentOpened]
    assert flow.detail == "failed at 12:00:01", "the failed result's detail is kept on the flow"
    assert all(effect.flow.detail == flow.detail for effect in step.effects)


def test_a_held_failed_result_keeps_its_detail_when_the_receipt_comes() -> None:
    held = machine.on_result(FlowState(), result("failed", T0), now=T0).state
    step = machine.on_receipt(held, receipt(), mode="test", project_timeout_minutes=30, now=T0)
    assert flow_of(step.state).detail == "failed at 12:00:00"
    assert machine.state_from_json(machine.state_to_json(step.state)) == step.state


def test_the_deadline_opens_a_timeout_incident_only_once_it_passed() -> None:
    state = start(timeout_seconds=60)
    assert machine.on_deadline(state, now=T0 + timedelta(seconds=59)).state == state
    step = machine.on_deadline(state, now=T0 + timedelta(seconds=60))
    assert flow_of(step.state).status is Status.INCIDENT and flow_of(step.state).incident_reason == "timeout"
    # A second expiry of the same flow changes nothing: one incident per flow.
    assert machine.on_deadline(step.state, now=T0 + timedelta(seconds=61)).effects == []


def test_a_late_success_resolves_the_incident() -> None:
    opened = machine.on_deadline(start(timeout_seconds=60), now=T0 + timedelta(seconds=61)).state
    step = machine.on_result(opened, result("succeeded", T0 + timedelta(seconds=90)),
                             now=T0 + timedelta(seconds=90))
    assert flow_of(step.state).status is Status.RESOLVED
    assert flow_of(step.state).resolution == "outcome_succeeded"
    assert [type(e) for e in step.effects] == [Transition, IncidentResolved]


def test_a_success_after_the_deadline_but_before_the_timer_opens_and_resolves() -> None:
    late = T0 + timedelta(seconds=61)
    step = machine.on_result(start(timeout_seconds=60), result("succeeded", late), now=late)
    assert flow_of(step.state).status is Status.RESOLVED
    assert [type(e) for e in step.effects] == [Transition, IncidentOpened, Transition, IncidentResolved]


def test_an_applied_flow_ignores_later_results() -> None:
    applied = machine.on_result(start(), result("succeeded", T0), now=T0).state
    assert machine.on_result(applied, result("failed", T0 + timedelta(seconds=1)), now=T0).state == applied
    assert machine.on_deadline(applied, now=T0 + timedelta(days=1)).state == applied


def test_a_result_before_its_receipt_is_held_then_joined() -> None:
    held = machine.on_result(FlowState(), result("succeeded", T0), now=T0)
    assert held.state.flow is None and held.effects == []
    step = machine.on_receipt(held.state, receipt(), mode="test", project_timeout_minutes=30, now=T0)
    assert flow_of(step.state).status is Status.APPLIED and step.state.held == ()


def test_held_results_expire_after_seven_days() -> None:
    old = machine.on_result(FlowState(), result("failed", T0), now=T0).state
    week_later = T0 + machine.HELD_RESULT_TTL + timedelta(seconds=1)
    newer = machine.on_result(old, result("succeeded", week_later), now=week_later).state
    assert [h.status for h in newer.held] == ["succeeded"]


def test_a_failure_received_before_the_deadline_but_applied_after_the_timeout_is_a_failed_outcome() -> None:
    timed_out = machine.on_deadline(start(timeout_seconds=60), now=T0 + timedelta(seconds=61)).state
    assert flow_of(timed_out).incident_reason == "timeout"
    step = machine.on_result(timed_out, result("failed", T0 + timedelta(seconds=59)),
                             now=T0 + timedelta(seconds=63))
    flow = flow_of(step.state)
    assert (flow.status, flow.incident_reason, flow.version) == (Status.INCIDENT, "failed_outcome", 3)
    assert flow.incident_id == flow_of(timed_out).incident_id, "the same incident, its reason corrected"
    assert [type(e) for e in step.effects] == [Transition, IncidentOpened]
    opened = step.effects[1]
    assert isinstance(opened, IncidentOpened) and opened.corrected
    assert (flow_of(timed_out).detail, flow.detail) == (None, "failed at 12:00:59")
    # A failure received after the deadline was rightly a timeout: nothing changes.
    late = machine.on_result(timed_out, result("failed", T0 + timedelta(seconds=61)),
                             now=T0 + timedelta(seconds=63))
    assert late.effects == [] and late.state == timed_out


def test_state_survives_its_json_round_trip() -> None:
    state = machine.on_result(start(), result("failed", T0 + timedelta(seconds=3)), now=T0).state
    assert machine.state_from_json(machine.state_to_json(state)) == state


# --- properties over any interleaving -------------------------------------------------------------

_event = st.one_of(
    st.tuples(st.just("receipt"), st.integers(0, 120)),
    st.tuples(st.just("succeeded"), st.integers(0, 120)),
    st.tuples(st.just("failed"), st.integers(0, 120)),
    st.tuples(st.just("tick"), st.integers(0, 120)),
    st.tuples(st.just("operator_resolves"), st.integers(0, 120)),
    # A failure the gateway received 30 s before it is applied (the agents were behind).
    st.tuples(st.just("failed_30s_before"), st.integers(0, 120)),
)


def _run(events: list[tuple[str, int]]) -> tuple[FlowState, list[machine.Effect]]:
    state, effects = FlowState(), []
    for kind, second in events:
        now = T0 + timedelta(seconds=second)
        if kind == "receipt":
            step = machine.on_receipt(state, receipt(at=now, timeout_seconds=60), mode="test",
                                      project_timeout_minutes=30, now=now)
        elif kind == "tick":
            step = machine.on_deadline(state, now=now)
        elif kind == "operator_resolves":
            step = machine.on_operator_resolve(state, now=now)
        elif kind == "failed_30s_before":
            step = machine.on_result(state, result("failed", now - timedelta(seconds=30)), now=now)
        else:
            step = machine.on_result(state, result(kind, now), now=now)
        # What the agent stores is the JSON form: the machine must behave the same after it.
        state = machine.state_from_json(machine.state_to_json(step.state))
        effects += step.effects
    return state, effects


@settings(max_examples=400)
@given(st.lists(_event, max_size=12))
def test_any_order_of_signals_keeps_the_rules(events: list[tuple[str, int]]) -> None:
    state, effects = _run(events)
    opened = [e for e in effects if isinstance(e, IncidentOpened) and not e.corrected]
    corrected = [e for e in effects if isinstance(e, IncidentOpened) and e.corrected]
    resolved = [e for e in effects if isinstance(e, IncidentResolved)]
    transitions = [e for e in effects if isinstance(e, Transition)]

    assert len(opened) <= 1, "at most one incident per flow"
    assert len(corrected) <= len(opened), "only an open incident's reason is corrected, once"
    assert all(e.flow.incident_reason == "failed_outcome" for e in corrected)
    assert len(resolved) <= len(opened), "only an opened incident can be resolved"
    if state.flow is None:
        assert effects == [], "results without a receipt never open anything"
        return
    assert state.flow.version == len(transitions), "every change is one transition, versions count them"
    statuses = [t.flow.status for t in transitions]
    if Status.APPLIED in statuses:
        assert Status.INCIDENT not in statuses[statuses.index(Status.APPLIED):], (
            "applied never turns into an incident")
    assert [t.flow.version for t in transitions] == list(range(1, len(transitions) + 1))


@settings(max_examples=400)
@given(st.lists(_event, max_size=12))
def test_the_stored_state_alone_gives_every_effect_again(events: list[tuple[str, int]]) -> None:
    # After a crash the agents emit a flow's outputs again from what they stored; those must be
    # exactly the outputs the steps gave, in order, or a lost event would come back different.
    state, effects = _run(events)
    assert machine.effects_of(state) == effects


@given(st.lists(_event, max_size=12))
def test_replaying_the_same_signals_gives_the_same_outcome(events: list[tuple[str, int]]) -> None:
    assert _run(events) == _run(events)


def test_a_repeated_idempotency_key_within_24_hours_is_a_duplicate() -> None:
    state = machine.remember(FlowState(), "k1", T0)
    assert state is not None
    assert machine.remember(state, "k1", T0 + timedelta(hours=23)) is None
    assert machine.remember(state, "k2", T0 + timedelta(hours=23)) is not None
    assert machine.remember(state, "k1", T0 + timedelta(hours=24, seconds=1)) is not None


def test_remembered_keys_survive_the_json_round_trip_and_stay_bounded() -> None:
    state = FlowState()
    for n in range(machine.MAX_REMEMBERED_KEYS + 10):
        remembered = machine.remember(state, f"k{n}", T0)
        assert remembered is not None, f"k{n} is new"
        state = remembered
    assert len(state.seen) == machine.MAX_REMEMBERED_KEYS
    assert machine.state_from_json(machine.state_to_json(state)) == state


def test_an_operator_resolves_an_open_incident_by_hand() -> None:
    opened = machine.on_result(start(), result("failed", T0), now=T0).state
    step = machine.on_operator_resolve(opened, now=T0 + timedelta(minutes=5))
    assert flow_of(step.state).status is Status.RESOLVED and flow_of(step.state).resolution == "manual"
    assert [type(e) for e in step.effects] == [Transition]
    # Nothing to resolve on a pending or applied flow.
    assert machine.on_operator_resolve(start(), now=T0).effects == []


@given(st.lists(_event, max_size=12))
def test_the_stored_pending_deadline_is_the_flows(events: list[tuple[str, int]]) -> None:
    state, _ = _run(events)
    expected = state.flow.deadline if state.flow and state.flow.status is Status.PENDING else None
    assert machine.pending_deadline(machine.state_to_json(state)) == expected
