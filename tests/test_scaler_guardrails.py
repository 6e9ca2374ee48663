"""The guardrails: examples for each rule, then properties over any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scaler.guardrails import (
    IN_FLIGHT_EXPIRY_SECONDS,
    Policy,
    Request,
    State,
    decide,
    heroku_limit,
)

NOW = 1_000_000.0
STALE = 120.0
POLICY = Policy(min_dynos=1, max_dynos=10, cooldown=60, max_step=3)


def fresh(desired: int | None) -> Request:
    return Request(desired, NOW - 5)


def test_scale_up_within_max_step() -> None:
    verdict = decide(fresh(9), State(current=2), POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (5, "scale 2 -> 5 (limited by max_step 3)")
    assert verdict.acts


def test_desired_above_max_is_clamped() -> None:
    verdict = decide(fresh(40), State(current=9), POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (10, "scale 9 -> 10 (desired 40 clamped to 10)")


def test_desired_below_min_is_clamped() -> None:
    verdict = decide(fresh(0), State(current=2), POLICY, NOW, STALE)
    assert verdict.target == 1


def test_same_count_is_no_action() -> None:
    verdict = decide(fresh(4), State(current=4), POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (None, "already at 4")


def test_count_in_flight_is_no_action() -> None:
    state = State(current=2, in_flight=4, in_flight_since=NOW - 3)
    verdict = decide(fresh(4), state, POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (None, "4 already in flight")


def test_expired_in_flight_mark_no_longer_blocks() -> None:
    state = State(current=2, in_flight=4, in_flight_since=NOW - IN_FLIGHT_EXPIRY_SECONDS - 1)
    assert decide(fresh(4), state, POLICY, NOW, STALE).target == 4


def test_no_scale_down_on_stale_data() -> None:
    verdict = decide(Request(2, NOW - 121), State(current=5), POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (
        None,
        "no scale-down: input data 121s old (stale after 120s)",
    )


def test_no_scale_down_on_missing_data_time() -> None:
    verdict = decide(Request(2, None), State(current=5), POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (
        None,
        "no scale-down: input data missing or of unknown age",
    )


def test_an_input_asking_only_to_scale_up_never_lowers_the_count() -> None:
    up_only = Request(2, NOW, scale_down_allowed=False)
    verdict = decide(up_only, State(current=5), POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (
        None,
        "no scale-down: the input asks only to scale up",
    )
    assert (
        decide(
            Request(7, NOW, scale_down_allowed=False), State(current=5), POLICY, NOW, STALE
        ).target
        == 7
    )


def test_scale_up_on_stale_data_is_allowed() -> None:
    assert decide(Request(6, NOW - 500), State(current=5), POLICY, NOW, STALE).target == 6


def test_cooldown_blocks_scale_down_only() -> None:
    state = State(current=5, last_action_at=NOW - 20)
    down = decide(fresh(3), state, POLICY, NOW, STALE)
    assert (down.target, down.reason) == (None, "no scale-down: cooldown, 40s left")
    assert decide(fresh(6), state, POLICY, NOW, STALE).target == 6
    later = State(current=5, last_action_at=NOW - 61)
    assert decide(fresh(3), later, POLICY, NOW, STALE).target == 3


def test_unknown_current_or_desired_is_no_action() -> None:
    assert decide(fresh(3), State(current=None), POLICY, NOW, STALE).target is None
    assert decide(fresh(None), State(current=3), POLICY, NOW, STALE).target is None


def test_current_above_max_is_brought_back_even_on_stale_data() -> None:
    state = State(current=30, last_action_at=NOW - 1)
    verdict = decide(Request(30, None), state, POLICY, NOW, STALE)
    assert verdict.target == 10
    assert verdict.reason.endswith("(current outside [1, 10])")


def test_heroku_limit_holds_the_target_until_it_expires() -> None:
    held = State(current=4, limit=8, limit_until=NOW + 600)
    verdict = decide(fresh(10), held, POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (
        7,
        "scale 4 -> 7 (desired 10 held at Heroku's limit 8) (limited by max_step 3)",
    )
    at_limit = State(current=8, limit=8, limit_until=NOW + 600)
    verdict = decide(fresh(10), at_limit, POLICY, NOW, STALE)
    assert (verdict.target, verdict.reason) == (None, "at Heroku's limit 8: desired 10")
    assert decide(fresh(6), at_limit, POLICY, NOW, STALE).target == 6  # down is not held
    expired = State(current=8, limit=8, limit_until=NOW)
    assert decide(fresh(10), expired, POLICY, NOW, STALE).target == 10


def test_a_count_above_the_limit_shows_the_limit_is_gone() -> None:
    state = State(current=9, limit=8, limit_until=NOW + 600)
    assert decide(fresh(10), state, POLICY, NOW, STALE).target == 10


def test_a_limit_below_min_dynos_is_the_target() -> None:
    policy = Policy(min_dynos=5, max_dynos=10, cooldown=60, max_step=3)
    state = State(current=1, limit=3, limit_until=NOW + 600)
    assert decide(fresh(6), state, policy, NOW, STALE).target == 3
    at_limit = State(current=3, limit=3, limit_until=NOW + 600)
    assert decide(fresh(6), at_limit, policy, NOW, STALE).target is None


def test_in_flight_marks_expire_past_the_request_deadline() -> None:
    # A request's Heroku calls end within the deadline (6 s): a mark older than
    # that plus room for the store no longer holds (it held for 120 s before).
    assert IN_FLIGHT_EXPIRY_SECONDS <= 10
    state = State(current=2, in_flight=4, in_flight_since=NOW - 11)
    assert decide(fresh(4), state, POLICY, NOW, STALE).target == 4


def test_dry_run_carries_target_but_does_not_act() -> None:
    verdict = decide(fresh(5), State(current=2), POLICY, NOW, STALE, dry_run=True)
    assert (verdict.target, verdict.dry_run, verdict.acts) == (5, True, False)
    assert verdict.reason == "dry run: scale 2 -> 5"


policies = st.builds(
    lambda low, span, cooldown, step: Policy(low, low + span, cooldown, step),
    st.integers(0, 50),
    st.integers(0, 50),
    st.floats(0, 600),
    st.integers(1, 20),
)
counts = st.integers(0, 200)
ages = st.one_of(st.none(), st.floats(0, 1000))
states = st.builds(
    State,
    current=st.one_of(st.none(), counts),
    last_action_at=st.one_of(st.none(), st.floats(NOW - 1000, NOW)),
    in_flight=st.one_of(st.none(), counts),
    in_flight_since=st.one_of(st.none(), st.floats(NOW - 300, NOW)),
    limit=st.one_of(st.none(), counts),
    limit_until=st.one_of(st.none(), st.floats(NOW - 300, NOW + 300)),
)


def request_of(desired: int | None, age: float | None) -> Request:
    return Request(desired, None if age is None else NOW - age)


@given(st.one_of(st.none(), counts), ages, states, policies, st.booleans())
def test_target_never_outside_bounds(desired, age, state, policy, dry_run) -> None:
    verdict = decide(request_of(desired, age), state, policy, NOW, STALE, dry_run)
    if verdict.target is not None:
        limit = heroku_limit(state, NOW)
        assert verdict.target <= policy.max_dynos
        assert policy.min_dynos <= verdict.target or verdict.target == limit
        assert verdict.target != state.current


@given(st.one_of(st.none(), counts), ages, states, policies)
def test_target_never_above_a_heroku_limit_that_holds(desired, age, state, policy) -> None:
    verdict = decide(request_of(desired, age), state, policy, NOW, STALE)
    holds = (
        state.limit is not None
        and state.current is not None
        and state.current <= state.limit
        and (state.limit_until is None or state.limit_until > NOW)
    )
    if verdict.target is not None and holds:
        assert verdict.target <= state.limit


@given(counts, ages, states, policies)
def test_no_scale_down_on_stale_or_missing_data_unless_out_of_bounds(
    desired, age, state, policy
) -> None:
    verdict = decide(request_of(desired, age), state, policy, NOW, STALE)
    stale = age is None or age > STALE
    in_bounds = state.current is not None and policy.min_dynos <= state.current <= policy.max_dynos
    if stale and in_bounds and verdict.target is not None:
        assert verdict.target > state.current


@given(counts, ages, states, policies)
def test_step_is_bounded_unless_bringing_back_into_bounds(desired, age, state, policy) -> None:
    verdict = decide(request_of(desired, age), state, policy, NOW, STALE)
    in_bounds = state.current is not None and policy.min_dynos <= state.current <= policy.max_dynos
    if verdict.target is not None and in_bounds:
        assert abs(verdict.target - state.current) <= policy.max_step


@given(counts, st.floats(0, STALE), counts, policies)
def test_applying_a_verdict_then_repeating_the_request_is_idempotent(
    desired, age, current, policy
) -> None:
    request = request_of(desired, age)
    first = decide(request, State(current=current), policy, NOW, STALE)
    if first.target is None:
        return
    in_flight = State(current=current, in_flight=first.target, in_flight_since=NOW)
    applied = State(current=first.target, last_action_at=NOW)
    repeat_in_flight = decide(request, in_flight, policy, NOW, STALE)
    repeat_applied = decide(request, applied, policy, NOW, STALE)
    assert repeat_in_flight.target is None
    wanted = max(policy.min_dynos, min(policy.max_dynos, desired))
    if first.target == wanted:
        assert repeat_applied.target is None
    else:
        # Limited by max_step: a repeat only continues in the same direction
        # (or waits for the cooldown when going down).
        assert repeat_applied.target is None or (
            (repeat_applied.target - first.target) * (first.target - current) > 0
        )
