"""The flow state machine, without Kafka: every rule, then properties over any order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agents import flow as machine
from agents.flow import Flow, FlowState, IncidentOpened, IncidentResolved, Transition
from topics import Receipt, Result
from topics.fields import Mode, ResultStatus
from topics.messages import FlowStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PROJECT = "prj_test"


def receipt(at: datetime = T0, timeout_seconds: int | None = None, key: str = "r1") -> Receipt:
    return Receipt(project_id=PROJECT, idempotency_key=key, reference="inv_1", event_type="invoice.paid",
                   effect_type="grant_access", received_at=at, timeout_seconds=timeout_seconds)


def result(status: str, at: datetime, replay_id: str | None = None) -> Result:
    return Result(project_id=PROJECT, idempotency_key=f"res-{at.isoformat()}", reference="inv_1",
                  status=ResultStatus(status), received_at=at, replay_id=replay_id,
                  detail=f"failed at {at:%H:%M:%S}" if status == "failed" else None)


def flow_of(state: FlowState) -> Flow:
    assert state.flow is not None, "no flow yet"
    return state.flow


def start(timeout_seconds: int | None = None, minutes: int = 30) -> FlowState:
    return machine.on_receipt(FlowState(), receipt(timeout_seconds=timeout_seconds), mode=Mode.TEST,
                              project_timeout_minutes=minutes, now=T0).state


def test_it_starts_pending_with_the_projects_timeout() -> None:
    step = machine.on_receipt(FlowState(), receipt(), mode=Mode.LIVE, project_timeout_minutes=30, now=T0)
    assert step.state.flow is not None
    assert flow_of(step.state).status is FlowStatus.PENDING
    assert flow_of(step.state).deadline == T0 + timedelta(minutes=30)
    assert flow_of(step.state).mode == "live"
    assert [type(e) for e in step.effects] == [Transition]


def test_a_per_event_timeout_overrides_the_project() -> None:
    assert flow_of(start(timeout_seconds=5)).deadline == T0 + timedelta(seconds=5)


def test_a_repeated_receipt_is_counted_on_the_open_flow_and_does_not_move_the_deadline() -> None:
    state = start()
    later = machine.on_receipt(state, receipt(at=T0 + timedelta(minutes=10), key="r2"), mode=Mode.TEST,
                               project_timeout_minutes=30, now=T0 + timedelta(minutes=10))
    assert later.state.flow == state.flow, "same cycle, same deadline, same version"
    assert later.state.repeats == machine.Repeats(2, T0 + timedelta(minutes=10))
    assert [type(e) for e in later.effects] == [machine.ReceiptRepeated]
    # An open incident counts repeats the same way: it is not closed, so no new cycle starts.
    opened = machine.on_deadline(later.state, now=T0 + timedelta(hours=1)).state
    again = machine.on_receipt(opened, receipt(at=T0 + timedelta(hours=2), key="r3"), mode=Mode.TEST,
                               project_timeout_minutes=30, now=T0 + timedelta(hours=2))
    assert again.state.flow == opened.flow
    assert again.state.repeats == machine.Repeats(3, T0 + timedelta(hours=2))


def _new_cycle_after(closed: FlowState, at: datetime, key: str = "r2") -> machine.Step:
    return machine.on_receipt(closed, receipt(at=at, timeout_seconds=60, key=key), mode=Mode.TEST,
                              project_timeout_minutes=30, now=at)


def test_a_receipt_for_a_closed_flow_starts_its_next_cycle_with_its_own_deadline_and_incident() -> None:
    applied = machine.on_result(start(), result("succeeded", T0 + timedelta(seconds=5)),
                                now=T0 + timedelta(seconds=5)).state
    later = T0 + timedelta(hours=3)
    step = _new_cycle_after(applied, later)
    flow = flow_of(step.state)
    assert (flow.cycle, flow.status, flow.version) == (2, FlowStatus.PENDING, 1)
    assert flow.deadline == later + timedelta(seconds=60)
    assert step.state.past == (machine.PastCycle(flow_of(applied), applied.changes),)
    assert [type(e) for e in step.effects] == [Transition]
    opened = flow_of(machine.on_deadline(step.state, now=later + timedelta(seconds=61)).state)
    first = flow_of(machine.on_result(start(), result("failed", T0), now=T0).state)
    assert opened.incident_id not in (None, first.incident_id), "each cycle has an incident id of its own"


def test_results_held_after_a_closed_cycle_join_the_next_only_if_received_after_its_receipt() -> None:
    applied = machine.on_result(start(), result("succeeded", T0), now=T0).state
    late_repeat = machine.on_result(applied, result("succeeded", T0 + timedelta(minutes=1)),
                                    now=T0 + timedelta(minutes=1)).state
    assert late_repeat.flow == applied.flow, "a closed cycle takes no result"
    # The next cycle's receipt came later than that result: the result was the old cycle's.
    step = _new_cycle_after(late_repeat, T0 + timedelta(minutes=2))
    assert flow_of(step.state).status is FlowStatus.PENDING and step.state.held == ()
    # A result the gateway received after the receipt, applied before it (topics are not ordered
    # with each other), is the new cycle's own.
    early = machine.on_result(applied, result("succeeded", T0 + timedelta(minutes=3)),
                              now=T0 + timedelta(minutes=3)).state
    joined = _new_cycle_after(early, T0 + timedelta(minutes=2))
    assert flow_of(joined.state).status is FlowStatus.APPLIED and flow_of(joined.state).cycle == 2


def test_a_closed_cycle_is_forgettable_after_the_retention_and_an_open_one_never() -> None:
    retention = timedelta(days=35)

    def forgettable(state: FlowState, now: datetime) -> bool:
        return machine.forgettable(machine.state_to_json(state), retention=retention, now=now)

    applied = machine.on_result(start(), result("succeeded", T0), now=T0).state
    assert not forgettable(applied, T0 + retention - timedelta(seconds=1))
    assert forgettable(applied, T0 + retention)
    opened = machine.on_result(start(), result("failed", T0), now=T0).state
    assert not forgettable(opened, T0 + timedelta(days=3650))
    assert not forgettable(start(), T0 + timedelta(days=3650))
    two_days = T0 + timedelta(days=2)
    resolved = machine.on_operator_resolve(opened, _open_incident_id(opened), now=two_days).state
    assert not forgettable(resolved, T0 + retention), "counted from when it closed"
    assert forgettable(resolved, two_days + retention)
    held = machine.on_result(FlowState(), result("succeeded", T0), now=T0).state
    assert not forgettable(held, T0 + machine.HELD_RESULT_TTL / 2)
    assert forgettable(held, T0 + machine.HELD_RESULT_TTL)


def test_success_before_the_deadline_applies_it() -> None:
    step = machine.on_result(start(), result("succeeded", T0 + timedelta(minutes=1)),
                             now=T0 + timedelta(minutes=1))
    assert flow_of(step.state).status is FlowStatus.APPLIED
    assert flow_of(step.state).applied_at == T0 + timedelta(minutes=1)
    assert [type(e) for e in step.effects] == [Transition]


def test_a_failed_result_opens_an_incident() -> None:
    step = machine.on_result(start(), result("failed", T0 + timedelta(seconds=1)),
                             now=T0 + timedelta(seconds=1))
    flow = flow_of(step.state)
    assert flow.status is FlowStatus.INCIDENT and flow.incident_reason == "failed_outcome"
    assert flow.incident_id == machine.incident_id_for(flow)
    assert [type(e) for e in step.effects] == [Transition, IncidentOpened]
    assert flow.detail == "failed at 12:00:01", "the failed result's detail is kept on the flow"
    assert all(effect.flow.detail == flow.detail for effect in step.effects)


def test_a_held_failed_result_keeps_its_detail_when_the_receipt_comes() -> None:
    held = machine.on_result(FlowState(), result("failed", T0), now=T0).state
    step = machine.on_receipt(held, receipt(), mode=Mode.TEST, project_timeout_minutes=30, now=T0)
    assert flow_of(step.state).detail == "failed at 12:00:00"
    assert machine.state_from_json(machine.state_to_json(step.state)) == step.state


def test_the_deadline_opens_a_timeout_incident_only_once_it_passed() -> None:
    state = start(timeout_seconds=60)
    assert machine.on_deadline(state, now=T0 + timedelta(seconds=59)).state == state
    step = machine.on_deadline(state, now=T0 + timedelta(seconds=60))
    expired = flow_of(step.state)
    assert expired.status is FlowStatus.INCIDENT and expired.incident_reason == "timeout"
    # A second expiry of the same flow changes nothing: one incident per flow.
    assert machine.on_deadline(step.state, now=T0 + timedelta(seconds=61)).effects == []


def test_a_late_success_resolves_the_incident() -> None:
    opened = machine.on_deadline(start(timeout_seconds=60), now=T0 + timedelta(seconds=61)).state
    step = machine.on_result(opened, result("succeeded", T0 + timedelta(seconds=90)),
                             now=T0 + timedelta(seconds=90))
    assert flow_of(step.state).status is FlowStatus.RESOLVED
    assert flow_of(step.state).resolution == "outcome_succeeded"
    assert [type(e) for e in step.effects] == [Transition, IncidentResolved]


def test_a_success_after_the_deadline_but_before_the_timer_opens_and_resolves() -> None:
    late = T0 + timedelta(seconds=61)
    step = machine.on_result(start(timeout_seconds=60), result("succeeded", late), now=late)
    assert flow_of(step.state).status is FlowStatus.RESOLVED
    assert [type(e) for e in step.effects] == [Transition, IncidentOpened, Transition, IncidentResolved]


def test_a_failure_received_after_the_deadline_but_applied_before_the_timer_is_a_timeout() -> None:
    late = T0 + timedelta(seconds=61)
    applied_at = late + timedelta(seconds=9)
    step = machine.on_result(start(timeout_seconds=60), result("failed", late), now=applied_at)
    flow = flow_of(step.state)
    assert (flow.status, flow.incident_reason, flow.detail) == (FlowStatus.INCIDENT, "timeout", None)
    assert [type(e) for e in step.effects] == [Transition, IncidentOpened]


def test_an_applied_flow_ignores_later_results() -> None:
    applied = machine.on_result(start(), result("succeeded", T0), now=T0).state
    later = machine.on_result(applied, result("failed", T0 + timedelta(seconds=1)), now=T0)
    assert later.state.flow == applied.flow and later.effects == [], "held for a next cycle, nothing more"
    assert machine.on_deadline(applied, now=T0 + timedelta(days=1)).state == applied


def test_a_result_before_its_receipt_is_held_then_joined() -> None:
    held = machine.on_result(FlowState(), result("succeeded", T0), now=T0)
    assert held.state.flow is None and held.effects == []
    step = machine.on_receipt(held.state, receipt(), mode=Mode.TEST, project_timeout_minutes=30, now=T0)
    assert flow_of(step.state).status is FlowStatus.APPLIED and step.state.held == ()


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
    assert (flow.status, flow.incident_reason, flow.version) == (FlowStatus.INCIDENT, "failed_outcome", 3)
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


def _open_incident_id(state: FlowState) -> str:
    return (state.flow and state.flow.incident_id) or "inc_none"


def _run(events: list[tuple[str, int]]) -> tuple[FlowState, list[machine.Effect]]:
    state, effects = FlowState(), []
    for kind, second in events:
        now = T0 + timedelta(seconds=second)
        if kind == "receipt":
            step = machine.on_receipt(state, receipt(at=now, timeout_seconds=60), mode=Mode.TEST,
                                      project_timeout_minutes=30, now=now)
        elif kind == "tick":
            step = machine.on_deadline(state, now=now)
        elif kind == "operator_resolves":
            step = machine.on_operator_resolve(state, _open_incident_id(state), now=now)
        elif kind == "failed_30s_before":
            step = machine.on_result(state, result("failed", now - timedelta(seconds=30)), now=now)
        else:
            step = machine.on_result(state, result(kind, now), now=now)
        # What the agent stores is the JSON form: the machine must behave the same after it.
        state = machine.state_from_json(machine.state_to_json(step.state))
        effects += step.effects
    return state, effects


def _by_cycle(effects: list[machine.Effect]) -> dict[int, list[machine.Effect]]:
    cycles: dict[int, list[machine.Effect]] = {}
    for effect in effects:
        cycles.setdefault(effect.flow.cycle, []).append(effect)
    return cycles


@settings(max_examples=400)
@given(st.lists(_event, max_size=12))
def test_any_order_of_signals_keeps_the_rules(events: list[tuple[str, int]]) -> None:
    state, effects = _run(events)
    if state.flow is None:
        assert effects == [], "results without a receipt never open anything"
        return
    cycles = _by_cycle(effects)
    assert sorted(cycles) == list(range(1, state.flow.cycle + 1)), "cycles are numbered 1, 2, 3 ..."
    for number, cycle in cycles.items():
        opened = [e for e in cycle if isinstance(e, IncidentOpened) and not e.corrected]
        corrected = [e for e in cycle if isinstance(e, IncidentOpened) and e.corrected]
        resolved = [e for e in cycle if isinstance(e, IncidentResolved)]
        transitions = [e for e in cycle if isinstance(e, Transition)]
        assert len(opened) <= 1, "at most one incident per cycle"
        assert len(corrected) <= len(opened), "only an open incident's reason is corrected, once"
        assert all(e.flow.incident_reason == "failed_outcome" for e in corrected)
        assert len(resolved) <= len(opened), "only an opened incident can be resolved"
        assert [t.flow.version for t in transitions] == list(range(1, len(transitions) + 1)), (
            "every change is one transition, versions count them within the cycle")
        statuses = [t.flow.status for t in transitions]
        if FlowStatus.APPLIED in statuses:
            assert FlowStatus.INCIDENT not in statuses[statuses.index(FlowStatus.APPLIED):], (
                "applied never turns into an incident")
        if number < state.flow.cycle:
            assert transitions[-1].flow.closed, "a next cycle starts only once the one before closed"
        assert len({e.flow.incident_id for e in opened + resolved}) <= 1
    incident_ids = [e.flow.incident_id for e in effects if isinstance(e, IncidentOpened) and not e.corrected]
    assert len(incident_ids) == len(set(incident_ids)), "no two cycles share an incident"


@settings(max_examples=400)
@given(st.lists(_event, max_size=12))
def test_the_stored_state_alone_gives_every_effect_again(events: list[tuple[str, int]]) -> None:
    # After a crash the agents emit a flow's outputs again from what they stored; those must be
    # exactly the outputs the steps gave, in order, or a lost event would come back different.
    # The state keeps the newest cycles only; a cycle's repeated receipts come back as one event
    # with their final count.
    state, effects = _run(events)
    derived = machine.effects_of(state)
    kept = {e.flow.cycle for e in derived}
    assert len(kept) <= machine.MAX_PAST_CYCLES + 1
    if state.flow is not None:
        assert state.flow.cycle in kept

    def transitions(of: list[machine.Effect]) -> list[machine.Effect]:
        return [e for e in of if not isinstance(e, machine.ReceiptRepeated) and e.flow.cycle in kept]

    def final_repeats(of: list[machine.Effect]) -> dict[int, machine.Repeats]:
        return {e.flow.cycle: e.repeats for e in of
                if isinstance(e, machine.ReceiptRepeated) and e.flow.cycle in kept}

    assert transitions(derived) == transitions(effects)
    assert final_repeats(derived) == final_repeats(effects)


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
    incident_id = _open_incident_id(opened)
    # An event for another incident (an earlier cycle's) resolves nothing.
    assert machine.on_operator_resolve(opened, "inc_other", now=T0).effects == []
    step = machine.on_operator_resolve(opened, incident_id, now=T0 + timedelta(minutes=5))
    assert flow_of(step.state).status is FlowStatus.RESOLVED and flow_of(step.state).resolution == "manual"
    assert [type(e) for e in step.effects] == [Transition]
    # Nothing to resolve on a pending or applied flow.
    assert machine.on_operator_resolve(start(), incident_id, now=T0).effects == []


@given(st.lists(_event, max_size=12))
def test_the_stored_pending_deadline_is_the_flows(events: list[tuple[str, int]]) -> None:
    state, _ = _run(events)
    expected = state.flow.deadline if state.flow and state.flow.status is FlowStatus.PENDING else None
    assert machine.pending_deadline(machine.state_to_json(state)) == expected
