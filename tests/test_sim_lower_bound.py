"""The clairvoyant lower bound: hand-computed, and really below every policy that meets it."""

from __future__ import annotations

import numpy as np
import pytest

from dynoscaler.sim.engine import simulate
from dynoscaler.sim.lower_bound import leftover_work, lower_bound
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


def test_out_of_bounds_is_infeasible():
    case = scenario(
        role={"min_dynos": 1, "max_dynos": 2, "concurrency": 1, "target_deadline": 10},
        arrivals={"rate": 5.0},
    )
    assert not lower_bound(case).feasible
