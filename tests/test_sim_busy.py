"""scale_down_when_busy in the simulator's closed loop: the jobs on stopped dynos."""

from __future__ import annotations

from dynoscaler.sim.busy import run_mode
from dynoscaler.sim.scenario import load


def test_wait_keeps_busy_jobs_off_the_dynos_a_spike_leaves() -> None:
    scenario = load("spike-within")
    allow, wait = run_mode(scenario, "allow"), run_mode(scenario, "wait")
    # allow stops dynos mid-job after the spike; wait holds each step down until the
    # running jobs fit on what remains, and here no stopped dyno had a job.
    assert allow.busy_stopped > 0
    assert wait.busy_stopped == 0
    assert wait.within_share >= allow.within_share
    # Holding costs dyno time, never the deadline.
    assert wait.dyno_seconds >= allow.dyno_seconds
