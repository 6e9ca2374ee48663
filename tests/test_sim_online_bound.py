"""The online bounds of a role that scales to zero: ordered, and above the clairvoyant one."""

from __future__ import annotations

import numpy as np
import pytest

from dynoscaler.sim.online_bound import deferring, main, online_bound
from tests.sim_support import scenario

QUIET = {
    "duration": 3600,
    "initial_dynos": 0,
    "role": {
        "min_dynos": 0,
        "max_dynos": 2,
        "target_deadline": 180,
        "boot_time": 45,
        "concurrency": 4,
    },
    "arrivals": {"type": "constant", "rate": 0.01},
    "service": {"type": "lognormal", "mean": 10.0, "cv": 0.5},
    "policies": ["dynoscaler"],
}


def test_planning_for_long_jobs_and_seeing_ends_late_cost_more():
    bound = online_bound(scenario(**QUIET))
    assert bound.clairvoyant < bound.length_blind < bound.seen_idle
    assert bound.foresight_free
    assert bound.plan_length > 10.0


def test_the_deferring_policy_keeps_its_jobs_in_time_above_both_bounds():
    # it is of the class the bounds hold for: planning q, stopping dynos seen idle
    bound = online_bound(scenario(**QUIET))
    assert bound.deferring_within == 1.0
    assert bound.deferring >= bound.seen_idle


def test_the_deferring_policy_by_hand():
    # boot requested when job 1 (planned 20 s) must start: 100 - 20 - 45 = 35; it runs
    # 80 .. 90 with job 2 (arrived at 50) beside it; the scrape at 95 sees it idle: stop at 97
    arrivals, services = np.array([0.0, 50.0]), np.array([10.0, 5.0])
    assert deferring(arrivals, services, 100, 45, 4, 20.0, (5.0, 2.0)) == (97.0 - 35.0, 1.0)
    # a job arriving at 96, after that scrape, waits for a session of its own: requested
    # at 96 + 100 - 20 - 45 = 131, it runs 176 .. 181, seen idle at 185, stopped at 187
    cost, within = deferring(np.array([0.0, 96.0]), services, 100, 45, 4, 20.0, (5.0, 2.0))
    assert (cost, within) == (62.0 + 187.0 - 131.0, 1.0)


def test_planning_for_the_shortest_job_is_the_clairvoyant_bound():
    bound = online_bound(scenario(**QUIET), quantile=0.0)
    assert bound.length_blind == pytest.approx(bound.clairvoyant)


def test_a_session_that_must_boot_before_its_job_is_seen_is_not_foresight_free():
    quick = scenario(**{**QUIET, "role": {**QUIET["role"], "target_deadline": 60}})
    assert not online_bound(quick).foresight_free  # 60 s - S99 - 45 s boot < 7 s to see it


def test_no_sessions_bound_with_a_floor():
    assert online_bound(scenario(**{**QUIET, "role": {**QUIET["role"], "min_dynos": 1}})) is None


def test_command_prices_the_policies(tmp_path, capsys):
    path = tmp_path / "quiet.yaml"
    path.write_text(
        "duration: 1800\ninitial_dynos: 0\n"
        "role: {min_dynos: 0, max_dynos: 2, target_deadline: 180, boot_time: 45}\n"
        "arrivals: {type: constant, rate: 0.01}\n"
        "service: {type: lognormal, mean: 10.0, cv: 0.5}\n"
    )
    assert main([str(path), "--seeds", "1-2", "--policy", "hirefire"]) == 0
    out = capsys.readouterr().out
    assert "| seed | q (s) | clairvoyant | length-blind | seen idle | foresight-free |" in out
    assert out.count("| yes | ") == 2
