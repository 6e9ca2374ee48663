"""A clairvoyant lower bound on the dyno-seconds any policy needs to meet every deadline.

The bound knows every job in advance (the same trace the policies get) and rests
on the simulator's rules: a dyno is billed from its scale-up request until it
stops (a stopped dyno until its last job ends) and takes jobs only boot_time B
after the request; the formation never drops below min_dynos and a scale-down
removes the newest dynos first, so the floor = min(min_dynos, initial_dynos)
dynos there at time 0 stay for the whole run; a job arriving at a with a + D
before the end must be done by a + D (the others may be left waiting, and the
bound drops them). c is the concurrency (slots per dyno).

1. Fluid work. Relax: a job's processing can be split across slots and time
   anywhere in its window (its tick's start to the end of its deadline's tick).
   Earliest-deadline-first on the floor's floor x c slots, each job as early as
   it has arrived, finishes the most work in time (the windows are all equally
   long, so EDF is optimal); the leftover runs on other dynos, which are billed
   at least leftover / c dyno-seconds while running jobs.
2. Starts. n* = the fewest dynos whose n* x c slots leave no work over. A
   schedule meeting every deadline is a fluid schedule on its peak count of dynos
   running jobs, so that peak is >= n*; at most initial_dynos of them were there
   at time 0, so >= n* - initial_dynos dynos were started during the run, none of
   them the floor's, each billed B before it runs a job: time that 1 leaves out.

       bound = floor x duration + leftover / c + B x max(0, n* - initial_dynos)

3. Sessions, for min_dynos 0: each wake-up pays a boot and the span of the jobs
   it runs (dynoscaler.sim.sessions proves it). Another bound on the same bill,
   so the larger of the two is the bound.

The same EDF with max_dynos tells whether meeting every deadline is possible at
all (the out-of-bounds spike: no). A role with `sizes:` has no bound here: it
counts dynos of one size, and a size change restarts the dyno. Still ignored:
the headroom queueing variance needs; dynos kept or restarted between peaks,
beyond the first n*; and in sessions a dyno's concurrency (work / c is left to
the fluid bound).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from dynoscaler.sim.jobs import JobSource
from dynoscaler.sim.scenario import Scenario
from dynoscaler.sim.sessions import session_bound

SESSION_JOB_LIMIT = 20_000  # the session bound is O(n^2): about a second at this many jobs
_NONE_LEFT = 1e-6  # seconds of leftover work that count as none (float noise; errs low)


@dataclass(frozen=True)
class LowerBound:
    dyno_seconds: float
    feasible: bool  # can max_dynos meet every deadline (in the fluid relaxation)?
    work_seconds: float  # total processing time of all jobs
    starts: int = 0  # dynos any schedule must start, each billed its boot before serving
    sessions: float | None = None  # the session bound, where it was computed


def work_per_tick(scenario: Scenario, seed: int | None = None) -> np.ndarray:
    """Processing seconds of the jobs arriving in each tick (the policies' trace)."""
    source = JobSource.of(scenario, seed)
    ticks = int(round(scenario.duration / scenario.tick))
    return np.array([source.jobs(k)[1].sum() for k in range(ticks)])


def due_jobs(
    scenario: Scenario, seed: int | None = None, limit: int = SESSION_JOB_LIMIT
) -> tuple[np.ndarray, np.ndarray] | None:
    """Arrival and processing times of the jobs due before the end; None if over `limit`."""
    source = JobSource.of(scenario, seed)
    deadline, end = scenario.role.target_deadline, scenario.duration
    arrivals, services, count = [], [], 0
    k = 0
    while k * scenario.tick + deadline < end:  # later ticks hold no job due before the end
        tick_arrivals, tick_services = source.jobs(k)
        due = tick_arrivals + deadline < end
        count += int(due.sum())
        if count > limit:
            return None
        arrivals.append(tick_arrivals[due])
        services.append(tick_services[due])
        k += 1
    if not arrivals:
        return np.empty(0), np.empty(0)
    return np.concatenate(arrivals), np.concatenate(services)


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


def fewest_dynos(
    work: np.ndarray, concurrency: int, deadline_ticks: int, tick: float, max_dynos: int
) -> int | None:
    """n*: the fewest dynos whose slots leave no work over; None if max_dynos leave some."""

    def enough(dynos: int) -> bool:
        return leftover_work(work, dynos * concurrency, deadline_ticks, tick) <= _NONE_LEFT

    if not enough(max_dynos):
        return None
    low, high = 0, max_dynos  # leftover work falls as slots rise: bisect
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return low


def lower_bound(scenario: Scenario, seed: int | None = None) -> LowerBound | None:
    """The bound on the scenario's trace; None for a role with sizes (not computed)."""
    role = scenario.role
    if role.sizes:
        return None
    tick, c = scenario.tick, role.concurrency
    work = work_per_tick(scenario, seed)
    # a job arriving in tick k may use ticks k .. k + ceil(D / tick) (its deadline's tick)
    deadline_ticks = math.ceil(role.target_deadline / tick)
    floor = min(role.min_dynos, scenario.initial_dynos)
    extra = leftover_work(work, floor * c, deadline_ticks, tick)
    fewest = fewest_dynos(work, c, deadline_ticks, tick, role.max_dynos)
    # where even max_dynos miss, no schedule meets every deadline and any bound holds
    starts = max(0, (role.max_dynos if fewest is None else fewest) - scenario.initial_dynos)
    fluid = floor * scenario.duration + extra / c + starts * role.boot_time
    sessions = _sessions(scenario, seed) if role.min_dynos == 0 else None
    return LowerBound(
        dyno_seconds=max(fluid, sessions or 0.0),
        feasible=fewest is not None,
        work_seconds=float(work.sum()),
        starts=starts,
        sessions=sessions,
    )


def _sessions(scenario: Scenario, seed: int | None) -> float | None:
    jobs = due_jobs(scenario, seed)
    if jobs is None:
        return None
    role = scenario.role
    serving_at_start = scenario.initial_dynos > 0
    return session_bound(*jobs, role.target_deadline, role.boot_time, serving_at_start)
