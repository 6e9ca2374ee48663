"""The online bounds of a role that scales to zero: ordered, and above the clairvoyant one."""

from __future__ import annotations

import pytest

from dynoscaler.sim.online_bound import main, online_bound
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
