"""scale_down_when_busy in the simulator's closed loop: the jobs on stopped dynos."""

from __future__ import annotations

import dataclasses

from dynoscaler.sim.busy import run_mode
from dynoscaler.sim.formation import Formation
from dynoscaler.sim.scenario import load
from scaler.quiet import DynoJobs


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


def test_dynos_are_numbered_in_the_order_heroku_adds_them() -> None:
    formation = Formation(concurrency=2, boot_time=45, initial=2)
    formation.scale_to(4, now=10.0)  # worker.3 and worker.4 boot until 55 s
    # A booting dyno's slots hold no job: nothing is in progress.
    assert formation.in_progress(20.0) == 0
    assert formation.busy_by_dyno(20.0) == {1: 0, 2: 0, 3: 0, 4: 0}
    rows = formation.serving_rows(60.0)  # rows 0 to 3: worker.1 to worker.4 here
    formation.free_at[rows[0], 0] = 100.0  # a job on worker.1 until 100 s
    formation.free_at[rows[3], :] = 90.0  # two on worker.4
    assert formation.busy_by_dyno(60.0) == {1: 1, 2: 0, 3: 0, 4: 2}
    assert formation.in_progress(60.0) == 3
    # A scale-down stops the highest numbers: worker.4, with its two jobs.
    formation.scale_to(3, now=60.0)
    assert formation.busy_stopped == 2
    assert formation.busy_by_dyno(60.0) == {1: 1, 2: 0, 3: 0}


def test_quiet_leaves_no_job_on_a_stopped_dyno_where_wait_does() -> None:
    # sine-wave's first hour: wait stops dynos that took a job after the scrape it
    # decided on; quiet stops them only once they stopped fetching and went idle.
    scenario = dataclasses.replace(load("sine-wave"), duration=3600.0)
    wait, quiet = run_mode(scenario, "wait"), run_mode(scenario, "quiet")
    assert wait.busy_stopped > 0
    assert quiet.busy_stopped == 0
    assert quiet.within_share >= wait.within_share


def test_a_quieted_dyno_takes_no_job_and_a_restart_boots_it() -> None:
    formation = Formation(concurrency=2, boot_time=45, initial=3)
    rows = formation.serving_rows(10.0)
    formation.free_at[rows[2], 0] = 30.0  # a job on worker.3 until 30 s
    formation.quiet([2, 3])
    assert formation.serving_rows(10.0).tolist() == [rows[0]]
    assert formation.workers(10.0) == {
        1: DynoJobs(False, 0),
        2: DynoJobs(True, 0),
        3: DynoJobs(True, 1),
    }
    formation.restart([2], now=10.0)  # kept: a fresh process after boot_time
    assert formation.workers(10.0)[2] == DynoJobs(False, 0)
    assert formation.serving_rows(54.0).tolist() == [rows[0]]
    assert formation.serving_rows(55.0).tolist() == [rows[0], rows[1]]
    assert formation.boots == 1
    # worker.3, stopped once idle, had no job left
    formation.scale_to(2, now=40.0)
    assert formation.busy_stopped == 0
