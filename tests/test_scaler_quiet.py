"""scale_down_when_busy: quiet — the dynos a scale-down stops are quieted first, then
stopped once idle (scaler.quiet), with a real Sidekiq 6 (Debian's ruby-sidekiq)."""

from __future__ import annotations

import shutil
import time

import pytest
from exporter_helpers import REDIS_DB1, redis_db1  # noqa: F401 (the db1 fixture)
from test_exporter_sidekiq import Sidekiq

from dynoscaler.processes import stop
from scaler.quiet import DynoJobs, SidekiqQuieter, Step, plan


def test_plan_quiets_the_dynos_above_the_target_and_goes_once_they_are_idle():
    working = {1: DynoJobs(False, 2), 2: DynoJobs(False, 1), 3: DynoJobs(False, 0)}
    step = plan(working, current=3, target=1)
    assert step.quiet == [2, 3]
    assert step.refusal == (
        "no scale-down to 1 yet (quiet): quieting dyno(s) 2, 3; 1 job(s) still running on dyno(s) 2"
    )
    draining = {1: DynoJobs(False, 2), 2: DynoJobs(True, 1), 3: DynoJobs(True, 0)}
    assert plan(draining, 3, 1) == Step(
        refusal="no scale-down to 1 yet (quiet): 1 job(s) still running on dyno(s) 2"
    )
    idle = {1: DynoJobs(False, 2), 2: DynoJobs(True, 0)}  # dyno 3 reports no process
    assert plan(idle, 3, 1) == Step()


def test_plan_lists_idle_quieted_dynos_the_formation_keeps_for_a_restart():
    # quieted for a scale-down to 1, then the load came back: 3 are kept
    dynos = {1: DynoJobs(False, 2), 2: DynoJobs(True, 0), 3: DynoJobs(True, 1)}
    assert plan(dynos, current=3, target=3) == Step(restart=[2])
    assert plan(dynos, current=3, target=5) == Step(restart=[2])


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("sidekiq") is None, reason="no sidekiq (./scripts/setup)")
def test_a_quieted_sidekiq_dyno_takes_no_job_while_work_waits(tmp_path, db1):
    sidekiq = Sidekiq(tmp_path)
    servers = []
    for dyno in ("worker.1", "worker.2"):
        sidekiq.env = {**sidekiq.env, "DYNO": dyno}
        servers.append(sidekiq.start("default", concurrency=2))
    quieter = SidekiqQuieter(REDIS_DB1, "worker", ["default"])
    try:
        _until(lambda: set(quieter.dynos()) == {1, 2})
        sidekiq.ruby("4.times { SlowJob.perform_async(8) }")  # 2 slots a dyno: 2 jobs on each
        _until(lambda: quieter.dynos() == {1: DynoJobs(False, 2), 2: DynoJobs(False, 2)})
        step = plan(quieter.dynos(), current=2, target=1)
        assert step.quiet == [2] and step.refusal is not None
        quieter.quiet(step.quiet)
        sidekiq.ruby("10.times { SlowJob.perform_async(3) }")
        _until(lambda: quieter.dynos()[2].quiet)
        _until(lambda: plan(quieter.dynos(), 2, 1).refusal is None)
        # dyno 2 is idle while jobs still wait: a dyno that fetched would have taken them
        assert quieter.dynos()[2] == DynoJobs(True, 0)
        assert db1.llen("queue:default") > 0
    finally:
        for server in servers:
            stop(server)


def _until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
