"""The simulator against queueing theory: M/M/c mean waits against Erlang C.

Fixed dyno count, no autoscaler, long runs, averaged over three seeds (one run's
mean wait at 70-95% utilisation still varies by several percent).
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from dynoscaler.sim.engine import simulate
from dynoscaler.sim.jobs import JobSource
from tests.sim_support import erlang_c_wait, scenario

pytestmark = pytest.mark.timeout(120)


def _mean_wait(seeds: range, **overrides) -> float:
    return float(
        np.mean([simulate(scenario(seed=s, **overrides), "fixed").mean_wait for s in seeds])
    )


def test_exact_path_matches_erlang_c_within_5_percent():
    # M/M/4 at 70% utilisation: the queue stays short, so every job goes through
    # the exact earliest-free-slot path.
    role = {"concurrency": 4}
    wait = _mean_wait(range(3), duration=40000, role=role, arrivals={"rate": 1.4})
    expected = erlang_c_wait(4, 1.4, 2.0)
    assert expected == pytest.approx(0.7144, abs=1e-4)
    assert wait == pytest.approx(expected, rel=0.05)


def test_batched_path_under_load_matches_erlang_c_within_10_percent():
    # M/M/100 at 95%: queues past the exact path's limit, so batches go through assign().
    overrides = {
        "duration": 20000,
        "role": {"concurrency": 100},
        "arrivals": {"rate": 9.5},
        "service": {"type": "exponential", "mean": 10.0},
    }
    wait = _mean_wait(range(3), **overrides)
    assert wait == pytest.approx(erlang_c_wait(100, 9.5, 10.0), rel=0.10)


def test_batched_path_with_short_jobs_is_within_one_and_a_half_processing_times():
    # 1,000 jobs/s of 21 ms on 28 slots (seeds/001): far more jobs than the exact
    # path takes per tick. The stated approximation: each slot sees every 28th
    # arrival, which adds up to about one processing time of waiting.
    overrides = {
        "duration": 300,
        "role": {"concurrency": 28},
        "arrivals": {"rate": 1000.0},
        "service": {"type": "exponential", "mean": 0.021},
    }
    wait = _mean_wait(range(1), **overrides)
    expected = erlang_c_wait(28, 1000.0, 0.021)
    assert expected < 0.001
    assert abs(wait - expected) <= 1.5 * 0.021


def test_exact_path_equals_an_event_by_event_simulation_of_the_same_jobs():
    case = scenario(duration=2000, role={"concurrency": 3}, arrivals={"rate": 1.2})
    result = simulate(case, "fixed")
    source = JobSource(case.arrivals, case.service, case.tick, case.seed)
    free, waits = [0.0] * 3, []
    for k in range(2000):
        for arrival, service in zip(*(x.tolist() for x in source.jobs(k)), strict=True):
            start = max(arrival, heapq.heappop(free))
            if start >= 2000:  # would start after the run: not counted by the engine either
                heapq.heappush(free, start)
                continue
            heapq.heappush(free, start + service)
            waits.append(start - arrival)
    assert result.mean_wait == pytest.approx(float(np.mean(waits)), rel=1e-9)
