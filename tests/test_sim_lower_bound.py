"""The clairvoyant lower bound: hand-computed, and really below every policy that meets it."""

from __future__ import annotations

import numpy as np
import pytest

from dynoscaler.sim import scenario as scenarios
from dynoscaler.sim.engine import simulate
from dynoscaler.sim.lower_bound import (
    due_jobs,
    fewest_dynos,
    leftover_work,
    lower_bound,
    work_per_tick,
)
from dynoscaler.sim.policies import DEFAULT_POLICIES
from tests.sim_support import scenario

pytestmark = pytest.mark.timeout(120)


def test_leftover_work_by_hand():
    # 10 s of work at tick 0 due by tick 2; 2 slots finish 2 s per tick: 6 s done, 4 s left.
    # The later work is due after the end and is not forced.
    work = np.array([10.0, 0.0, 0.0, 10.0, 10.0])
    assert leftover_work(work, slots=2, deadline_ticks=2, tick=1.0) == pytest.approx(4.0)
    assert leftover_work(work, slots=4, deadline_ticks=2, tick=1.0) == pytest.approx(0.0)
    assert leftover_work(work, slots=0, deadline_ticks=0, tick=1.0) == pytest.approx(30.0)


def test_fewest_dynos_by_hand():
    # 10 s of work due by tick 2: 3 ticks, so 4 slots (3 leave 1 s over)
    work = np.array([10.0, 0.0, 0.0])
    assert fewest_dynos(work, 1, deadline_ticks=2, tick=1.0, max_dynos=8) == 4
    assert fewest_dynos(work, 2, deadline_ticks=2, tick=1.0, max_dynos=8) == 2
    assert fewest_dynos(work, 4, deadline_ticks=2, tick=1.0, max_dynos=8) == 1
    assert fewest_dynos(work, 1, deadline_ticks=2, tick=1.0, max_dynos=3) is None
    assert fewest_dynos(np.zeros(3), 1, deadline_ticks=2, tick=1.0, max_dynos=3) == 0


def test_bound_is_the_floor_plus_leftover_work_per_concurrency():
    case = scenario(
        duration=300,
        role={"min_dynos": 1, "max_dynos": 6, "concurrency": 2, "target_deadline": 20},
        arrivals={"type": "spike", "base": 0.2, "peak": 3.0, "start": 100, "duration": 30},
    )
    bound = lower_bound(case)
    assert bound.feasible
    assert bound.dyno_seconds > 300  # the spike needs more than the floor
    assert bound.dyno_seconds < 300 + bound.work_seconds / 2


def test_every_dyno_started_beyond_the_initial_ones_adds_its_boot():
    role = {"min_dynos": 1, "max_dynos": 6, "concurrency": 2, "target_deadline": 20}
    spike = {"type": "spike", "base": 0.2, "peak": 3.0, "start": 100, "duration": 30}
    case = scenario(duration=300, initial_dynos=1, role={**role, "boot_time": 40}, arrivals=spike)
    work = work_per_tick(case)
    peak = fewest_dynos(work, 2, deadline_ticks=20, tick=1.0, max_dynos=6)
    bound = lower_bound(case)
    assert peak is not None and peak > 1 and bound.starts == peak - 1
    fluid = 300 + leftover_work(work, 2, deadline_ticks=20, tick=1.0) / 2  # floor: 1 dyno
    assert bound.dyno_seconds == pytest.approx(fluid + 40 * bound.starts)
    assert bound.sessions is None  # min_dynos 1: one session, the floor's


def test_a_role_at_zero_pays_a_boot_and_a_run_per_wake_up():
    case = scenario(
        duration=900,
        seed=7,
        initial_dynos=0,
        role={"min_dynos": 0, "max_dynos": 2, "target_deadline": 100, "boot_time": 45},
        arrivals={"type": "constant", "rate": 0.004},
        service={"type": "normal", "mean": 10.0, "cv": 0.1},
    )
    arrivals, services = due_jobs(case)
    # three ~9 s jobs ~200 s apart, more than deadline + boot: three sessions of boot + run
    assert arrivals.round().tolist() == [295, 483, 697]
    bound = lower_bound(case)
    assert bound.sessions == pytest.approx(3 * 45 + services.sum())
    assert bound.dyno_seconds == bound.sessions > bound.work_seconds / 4 + 45
    assert due_jobs(case, limit=2) is None  # beyond the limit: no session bound


def test_no_policy_and_no_fixed_count_meeting_every_deadline_beats_the_bound():
    case = scenario(
        duration=1200,
        role={
            "min_dynos": 1,
            "max_dynos": 8,
            "concurrency": 2,
            "target_deadline": 120,
            "boot_time": 20,
        },
        arrivals={"type": "spike", "base": 0.3, "peak": 4.0, "start": 300, "duration": 120},
        service={"type": "lognormal", "mean": 2.0, "cv": 0.5},
    )
    bound = lower_bound(case).dyno_seconds
    runs = [simulate(case, name) for name in DEFAULT_POLICIES]
    runs += [simulate(case, "fixed", params={"dynos": n}) for n in range(1, 9)]
    meeting = [run for run in runs if run.within_share == 1.0]
    assert len(meeting) >= 3  # the check is not empty
    for run in meeting:
        assert run.dyno_seconds >= bound, (run.policy, run.dyno_seconds, bound)
    tightest = min(run.dyno_seconds for run in meeting)
    assert tightest < 2 * bound  # and not a uselessly low bound


def test_a_quiet_role_at_zero_is_bounded_by_its_sessions_and_stays_below_every_policy():
    case = scenario(
        duration=7200,
        initial_dynos=0,
        role={
            "min_dynos": 0,
            "max_dynos": 2,
            "concurrency": 4,
            "target_deadline": 180,
            "boot_time": 45,
        },
        arrivals={"type": "constant", "rate": 0.01},
        service={"type": "lognormal", "mean": 10.0, "cv": 0.5},
    )
    bound = lower_bound(case)
    assert bound.sessions is not None and bound.dyno_seconds == bound.sessions
    assert bound.sessions > 5 * (bound.work_seconds / 4 + 45)  # the fluid bound and one boot
    runs = [simulate(case, name) for name in DEFAULT_POLICIES]
    runs += [simulate(case, "fixed", params={"dynos": n}) for n in (1, 2)]
    meeting = [run for run in runs if run.within_share == 1.0]
    assert len(meeting) >= 3
    for run in meeting:
        assert run.dyno_seconds >= bound.dyno_seconds, (run.policy, run.dyno_seconds)
    assert min(run.dyno_seconds for run in meeting) < 2.5 * bound.dyno_seconds


@pytest.mark.parametrize("name", ["quiet-night", "load-test", "spike-within", "flash-sale"])
def test_no_policy_meeting_every_deadline_beats_the_bound_on_shipped_scenarios(name):
    # the quick ones; the report covers sine-wave, call-centre and day-1000
    case = scenarios.load(name)
    bound = lower_bound(case)
    assert bound.feasible
    for policy in case.policies:
        run = simulate(case, policy)
        if run.within_share == 1.0:
            assert run.dyno_seconds >= bound.dyno_seconds, (policy, run.dyno_seconds)


def test_the_bound_is_deterministic():
    case = scenarios.load("quiet-night")
    assert lower_bound(case) == lower_bound(case)
    assert lower_bound(case, seed=8) != lower_bound(case)


def test_out_of_bounds_is_infeasible():
    case = scenario(
        role={"min_dynos": 1, "max_dynos": 2, "concurrency": 1, "target_deadline": 10},
        arrivals={"rate": 5.0},
    )
    assert not lower_bound(case).feasible


def test_a_role_with_sizes_has_no_bound():
    # the bound counts dynos of one size; one dyno of a larger size is not "infeasible"
    case = scenario(
        role={
            "min_dynos": 1,
            "max_dynos": 1,
            "target_deadline": 60,
            "sizes": [
                {"size": "standard-1x", "concurrency": 1},
                {"size": "performance-l", "concurrency": 16},
            ],
        },
        arrivals={"rate": 5.0},
    )
    assert lower_bound(case) is None
