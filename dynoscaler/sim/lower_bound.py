"""A clairvoyant lower bound on the dyno-seconds any policy needs to meet every deadline.

The bound knows every job in advance (the same trace the policies get) and
relaxes the problem until it can be solved exactly:
- work is fluid: a job's processing time can be split across slots and time,
  anywhere between its arrival and its deadline (tick start to tick end + D);
- extra dynos appear the moment they are needed, boot and billing rounding free.
The min_dynos floor is billed anyway, and gives min_dynos x concurrency slots
for free. Work those free slots cannot finish in time has to run on extra
capacity, and every extra slot-second costs at least 1/concurrency dyno-second.
Serving the work earliest-deadline-first on the free slots, as early as it has
arrived, finishes the most work in time (the windows are all D long, so EDF is
optimal for them), so the work left over is the least any schedule must add:

    bound = min_dynos x duration + leftover work / concurrency

Every real schedule is one of the relaxed schedules, so no policy can use fewer
dyno-seconds and meet every deadline. The same greedy with max_dynos tells
whether meeting every deadline is possible at all (the out-of-bounds spike: no).
The bound is loose where a role needs less than one dyno's worth of work (a
real dyno must run to do any work) and where queueing variance needs headroom.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from dynoscaler.sim.jobs import JobSource
from dynoscaler.sim.scenario import Scenario


@dataclass(frozen=True)
class LowerBound:
    dyno_seconds: float
    feasible: bool  # can max_dynos meet every deadline (in the fluid relaxation)?
    work_seconds: float  # total processing time of all jobs


def work_per_tick(scenario: Scenario, seed: int | None = None) -> np.ndarray:
    """Processing seconds of the jobs arriving in each tick (the policies' trace)."""
    source = JobSource.of(scenario, seed)
    ticks = int(round(scenario.duration / scenario.tick))
    return np.array([source.jobs(k)[1].sum() for k in range(ticks)])


def leftover_work(work: np.ndarray, slots: float, deadline_ticks: int, tick: float) -> float:
    """Work that `slots` slots, EDF from arrival, cannot finish by its deadline."""
    open_work: deque[list[float]] = deque()  # [deadline tick, remaining work]
    leftover = 0.0
    for k, amount in enumerate(work.tolist()):
        if amount:
            open_work.append([k + deadline_ticks, amount])
        capacity = slots * tick
        while open_work and capacity > 0:
            done = min(capacity, open_work[0][1])
            open_work[0][1] -= done
            capacity -= done
            if open_work[0][1] <= 1e-12:
                open_work.popleft()
        while open_work and open_work[0][0] <= k:
            leftover += open_work.popleft()[1]
    return leftover


def lower_bound(scenario: Scenario, seed: int | None = None) -> LowerBound:
    role = scenario.role
    work = work_per_tick(scenario, seed)
    # a job arriving in tick k may use ticks k .. k + ceil(D / tick) (its deadline's tick)
    deadline_ticks = math.ceil(role.target_deadline / scenario.tick)
    c = role.concurrency
    feasible = leftover_work(work, role.max_dynos * c, deadline_ticks, scenario.tick) <= 1e-9
    extra = leftover_work(work, role.min_dynos * c, deadline_ticks, scenario.tick)
    return LowerBound(
        dyno_seconds=role.min_dynos * scenario.duration + extra / c,
        feasible=feasible,
        work_seconds=float(work.sum()),
    )
