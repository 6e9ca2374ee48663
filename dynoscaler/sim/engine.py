"""The simulation loop: jobs arrive, wait in one FIFO, run on dyno slots; a policy scales.

Time advances in ticks (1 s by default). Each tick:
1. every scrape interval, the exporter's metrics are sampled into the View;
2. every policy interval, `evaluation_lag` seconds after a scrape (the data is
   that old, as in Prometheus), the policy decides from the View; its decision takes
   effect `policy.delay_for(...)` seconds later (or never) through the Actuator
   (guardrails or clamp); a newer decision due sooner replaces older ones not yet
   applied. The policy decides, and the actuator clamps, with the floor and budget in
   force then (dynoscaler.schedules: a window's, from boot_time before it opens);
3. the tick's arrivals join the queue; free slots of serving dynos start jobs
   in FIFO order; every started job gets its exact start and end time.

While at most EXACT_LIMIT jobs wait, each job in turn takes the earliest-free
slot: the exact FIFO multi-server queue. Longer queues (high volume, backlogs)
go through assign() in vectorised batches, whose one approximation is how slots
are matched to jobs inside a tick: the k-th waiting job goes to the k-th
earliest-free slot, and a slot that frees up again within the same tick takes
the job m places further on (m = slots) rather than whichever job is next.
With a backlog or jobs longer than a tick this changes little; with jobs much
shorter than a tick and no backlog each slot sees every m-th arrival, which
adds up to about one processing time of waiting. tests/test_sim_queueing.py
holds both paths to Erlang C.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

import numpy as np

from dynoscaler import schedules
from dynoscaler.config import RoleSettings, ScalerSettings, SizeOption
from dynoscaler.prices import Prices
from dynoscaler.sim.actuation import Actuator
from dynoscaler.sim.alerting import Pager
from dynoscaler.sim.fifo import Fifo
from dynoscaler.sim.formation import Formation
from dynoscaler.sim.jobs import JobSource
from dynoscaler.sim.metrics import Completions, RunResult, Tally, Trace
from dynoscaler.sim.observe import View
from dynoscaler.sim.policies import build
from dynoscaler.sim.policies.base import Context, Policy
from dynoscaler.sim.scenario import Scenario
from dynoscaler.sizing import SizeNeed, choose_size, units_needed
from scaler.guardrails import Busy, busy_refusal, size_refusal
from scaler.quiet import DynoJobs
from scaler.quiet import step as quiet_step

RECONCILE_INTERVAL = ScalerSettings.reconcile_interval

_MAX_PASSES = 4
# queues up to this long are served job by job (exact); longer ones through assign()
EXACT_LIMIT = 48


def assign(
    free: np.ndarray, arrivals: np.ndarray, services: np.ndarray, horizon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start FIFO jobs on slots whose free times are `free` (sorted ascending).

    Job j goes to slot j % m; each slot runs its jobs back to back (a Lindley
    recursion per slot, vectorised: end_i = S_i + max(free, max_k<=i (a_k - S_k-1))).
    Returns (started mask, start times, end times, new free times per slot);
    a job starts only if its start is before `horizon`.
    """
    m, n = free.size, arrivals.size
    rows = -(-n // m)
    pad = rows * m - n
    a = np.concatenate((arrivals, np.full(pad, np.inf))).reshape(rows, m)
    s = np.concatenate((services, np.zeros(pad))).reshape(rows, m)
    total = np.cumsum(s, axis=0)
    ready = np.maximum.accumulate(a - (total - s), axis=0)
    np.maximum(ready, free, out=ready)
    end = total + ready
    start = end - s
    started = start < horizon
    count = started.sum(axis=0)
    columns = np.arange(m)
    new_free = np.where(count > 0, end[np.maximum(count - 1, 0), columns], free)
    return started.ravel()[:n], start.ravel()[:n], end.ravel()[:n], new_free


class Simulation:
    def __init__(self, scenario: Scenario, policy: Policy, seed: int | None = None) -> None:
        self.scenario, self.policy = scenario, policy
        role = scenario.role
        self.dt = scenario.tick
        self.ticks = int(round(scenario.duration / self.dt))
        self.source = JobSource.of(scenario, seed)
        self.formation = Formation(role.concurrency, role.boot_time, scenario.initial_dynos)
        self.fifo = Fifo()
        self.tally = Tally(role.target_deadline)
        self.actuator = Actuator(role, policy.guarded)
        self.scrape_every = max(1, round(scenario.observation.scrape_interval / self.dt))
        self.view = View(self.ticks // self.scrape_every + 2, scenario.observation.scrape_interval)
        self.decide_every = max(1, round(policy.interval / self.dt))
        self.lag_ticks = round(scenario.observation.evaluation_lag / self.dt)
        self.trace = Trace()
        self.completions = Completions()
        self.rows_cap = math.ceil(1.5 * self.dt / scenario.service.mean) + 1
        self.changes: list[int] = []
        self.pager = Pager(policy.flag_for, policy.flag_delay)
        # A role with sizes runs at one size at a time, the first to start with.
        self.size: SizeOption | None = role.sizes[0] if role.sizes else None
        self.size_changes: list[tuple[float, str]] = []
        self._size_need = SizeNeed(role.size_cooldown)
        self._busy_by_dyno: dict[int, int] = {}
        self._workers: dict[int, DynoJobs] = {}  # scale_down_when_busy: quiet
        self._reconciled = -math.inf
        self.prices = Prices()

    def run(self) -> RunResult:
        pending: deque[tuple[float, int, SizeOption | None]] = deque()
        arrived = 0
        for k in range(self.ticks):
            now = k * self.dt
            if k % self.scrape_every == 0:
                self._scrape(now, arrived)
                arrived = 0
            if k >= self.lag_ticks and (k - self.lag_ticks) % self.decide_every == 0:
                self._decide(now, pending)
            while pending and pending[0][0] <= now:
                _, desired, size = pending.popleft()
                self._actuate(desired, now, size)
            arrivals, services = self.source.jobs(k)
            arrived += arrivals.size
            self.fifo.push(arrivals, services)
            self._serve(now)
            self.tally.waiting(self.fifo.oldest_arrival(), now + self.dt)
            self.formation.retire_drained(now + self.dt)
        return self._result()

    def _decide(self, now: float, pending: deque[tuple[float, int, SizeOption | None]]) -> None:
        current = self.formation.quantity
        self.policy.role = self._in_force(now)
        decision = self.policy.decide(self.view, now, current)
        if now - self._reconciled >= RECONCILE_INTERVAL and self._workers:
            self._reconcile_quiet(decision.desired, now)
        self.pager.update(now, decision.unmeetable)
        desired, size = decision.desired, None
        if self.size is not None and self.policy.guarded and decision.slots is not None:
            # ResizeRole fires while the role has a need and Alertmanager repeats it
            # every 10 s: the scaler hears of each decision; most change nothing.
            desired, size = self._sized(decision.slots, now, current)
            delay = None if (desired, size) == (current, None) else self.policy.delay
        else:
            delay = self.policy.delay_for(now, decision, current)
        if delay is None:
            return
        due = now + delay
        # a newer decision that acts sooner supersedes the older ones still on their way
        while pending and pending[-1][0] >= due:
            pending.pop()
        pending.append((due, desired, size))

    def _sized(self, slots: float, now: float, current: int) -> tuple[int, SizeOption | None]:
        """As the scaler decides for a role with sizes (scaler.service): the cheapest
        (size, count) for the slots, the size kept where it may not change (stale data,
        size cooldown, a smaller size while jobs run under scale_down_when_busy)."""
        role, size = self._in_force(now), self.size
        units = units_needed(slots, size)
        recent = self._size_need.update(now, units)
        choice = choose_size(units, role, self.prices, (size, current), recent)
        if choice.option != size:
            last = self.size_changes[-1][0] if self.size_changes else None
            observed_at = self.view.times[self.view.count - 1]
            held = size_refusal(
                observed_at, last, role.size_cooldown, now, self.actuator.stale_after
            )
            if not held and choice.count * choice.option.capacity < current * size.capacity:
                busy = self._busy()
                held = busy_refusal(role.scale_down_when_busy, busy, 0, role.concurrency)
            if not held:
                return choice.count, choice.option
        at_size = dataclasses.replace(role, sizes=(size,))
        return choose_size(recent, at_size, self.prices).count, None

    def _scrape(self, now: float, arrived: int) -> None:
        oldest = self.fifo.oldest_arrival()
        dynos = self.formation.quantity
        completions = self.completions
        completions.count_until(now)
        self.view.record(
            now,
            depth=len(self.fifo),
            in_progress=self.formation.in_progress(now),
            oldest_age=0.0 if oldest is None else now - oldest,
            completed=completions.count,
            duration_sum=completions.work,
            duration_count=completions.count,
            duration_bucket=completions.buckets,
            dynos=dynos,
        )
        self._busy_by_dyno = self.formation.busy_by_dyno(now)
        if self.scenario.role.scale_down_when_busy == "quiet":
            self._workers = self.formation.workers(now)
        trace = self.trace
        trace.times.append(now)
        trace.arrival_rate.append(arrived / self.view.scrape_interval if now else 0.0)
        trace.depth.append(len(self.fifo))
        trace.dynos.append(dynos)
        trace.billed.append(self.formation.billed_now())

    def _busy(self) -> Busy:
        """The jobs in progress, in all and per dyno, as Prometheus last saw them."""
        return Busy(self.view.latest("in_progress"), by_dyno=self._busy_by_dyno)

    def _in_force(self, now: float) -> RoleSettings:
        """The role's settings at `now`: a schedule's floor and budget while in force
        (and a role with sizes: its current size's concurrency)."""
        role = schedules.in_force(self.scenario.role, self.scenario.start + now)
        if self.size is None:
            return role
        return dataclasses.replace(role, concurrency=self.size.concurrency)

    def _actuate(self, desired: int, now: float, size: SizeOption | None = None) -> None:
        current = self.formation.quantity
        if size is not None and size != self.size:
            # Every dyno restarts at the new size: a boot for each.
            self.formation.resize(size.concurrency, desired, now)
            self.changes.append(desired - current)
            self.size_changes.append((now, size.size))
            role = self._in_force(now)
            self._size_need.changed(now + role.boot_time + role.target_deadline)
            self.size = size
            self.actuator.applied(now)
            return
        self.actuator.role = self._in_force(now)
        busy = self._busy()
        observed_at = self.view.times[self.view.count - 1]
        if self.actuator.role.scale_down_when_busy == "quiet" and self.policy.guarded:
            target = self._quieted(desired, current, observed_at, now)
        else:
            target = self.actuator.target(desired, current, observed_at, now, busy)
        if target != current:
            self.changes.append(self.formation.scale_to(target, now))
            self.actuator.applied(now)

    def _reconcile_quiet(self, desired: int, now: float) -> None:
        """The reconciler's pass (scaler.reconcile, every reconcile_interval) where it
        matters to `quiet`: while a dyno is quiet, the desired count goes through the
        decision path even when no alert notifies (the same count repeated, or equal to
        the formation's), so idle quieted dynos are stopped, or restarted where kept,
        within reconcile_interval. The reconciler is not modelled otherwise."""
        self._reconciled = now
        if any(worker.quiet for worker in self._workers.values()):
            self._actuate(desired, now)

    def _quieted(self, desired: int, current: int, observed_at: float, now: float) -> int:
        """As the scaler decides under scale_down_when_busy: quiet (scaler.quiet.step),
        from the workers' state of the last scrape."""
        role = self.actuator.role
        self.actuator.role = dataclasses.replace(role, scale_down_when_busy="allow")
        target = self.actuator.target(desired, current, observed_at, now)
        self.actuator.role = role
        step = quiet_step(self._workers, role, current, desired, target)
        self.formation.quiet(step.quiet)
        self.formation.restart(step.restart, now)
        return current if step.refusal else target

    def _serve(self, now: float) -> None:
        rows = self.formation.serving_rows(now)
        if rows.size == 0 or not len(self.fifo):
            return
        free = np.maximum(self.formation.free_at[rows].ravel(), now)
        horizon = now + self.dt
        if free.min() >= horizon:
            return
        if len(self.fifo) <= EXACT_LIMIT:
            self._serve_exact(free, horizon)
        else:
            free = self._serve_batched(free, horizon)
        self.formation.free_at[rows] = free.reshape(rows.size, -1)

    def _serve_exact(self, free: np.ndarray, horizon: float) -> None:
        """Each job in turn on the earliest-free slot: the exact FIFO multi-server queue."""
        arrivals, services = self._at_speed(*self.fifo.head(EXACT_LIMIT))
        starts = []
        for arrival, service in zip(arrivals.tolist(), services.tolist(), strict=True):
            slot = int(free.argmin())
            start = max(arrival, float(free[slot]))
            if start >= horizon:  # later jobs arrive later: none of them starts either
                break
            free[slot] = start + service
            starts.append(start)
        if starts:
            n = len(starts)
            start = np.array(starts)
            self._account(arrivals[:n], start, start + services[:n], services[:n])
            self.fifo.remove_from_head(np.arange(arrivals.size) < n)

    def _serve_batched(self, free: np.ndarray, horizon: float) -> np.ndarray:
        """Many jobs at once through assign(); returns the slots' new free times."""
        order = np.argsort(free, kind="stable")
        free = free[order]
        for _ in range(_MAX_PASSES):
            if not len(self.fifo) or free[0] >= horizon:  # nothing waits, or no slot frees up
                break
            arrivals, services = self._at_speed(*self.fifo.head(free.size * self.rows_cap))
            started, start, end, new_free = assign(free, arrivals, services, horizon)
            if not started.any():
                break
            if started.all():
                self._account(arrivals, start, end, services)
            else:
                self._account(arrivals[started], start[started], end[started], services[started])
            self.fifo.remove_from_head(started)
            resort = np.argsort(new_free, kind="stable")
            order, free = order[resort], new_free[resort]
        flat = np.empty_like(free)
        flat[order] = free
        return flat

    def _at_speed(
        self, arrivals: np.ndarray, services: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Jobs' processing times on the current size (drawn at speed 1)."""
        if self.size is None or self.size.speed == 1:
            return arrivals, services
        return arrivals, services / self.size.speed

    def _account(
        self, arrivals: np.ndarray, start: np.ndarray, end: np.ndarray, s: np.ndarray
    ) -> None:
        self.tally.started(arrivals, start, end)
        self.completions.started(end, s)

    def _result(self) -> RunResult:
        end = self.ticks * self.dt
        self.tally.unfinished(self.fifo.drain(), end)
        tally = self.tally
        pages = self.pager.close(end)
        return RunResult(
            scenario=self.scenario.name,
            policy=self.policy.name,
            jobs=tally.jobs,
            within_share=tally.within / tally.jobs if tally.jobs else 1.0,
            p99=tally.percentile(0.99),
            mean_wait=tally.wait_sum / max(tally.started_jobs, 1),
            dyno_seconds=self.formation.close(end),
            actions=len(self.changes),
            direction_changes=direction_changes(self.changes),
            first_miss=tally.first_miss,
            first_flag=pages[0][0] if pages else math.inf,
            pages=pages,
            misses=tally.misses(),
            trace=self.trace,
            busy_stopped=self.formation.busy_stopped,
            cut=self.formation.cut,
            size_changes=tuple(self.size_changes),
            boots=self.formation.boots,
        )


def direction_changes(changes: list[int]) -> int:
    signs = [1 if c > 0 else -1 for c in changes if c]
    return sum(1 for a, b in zip(signs, signs[1:], strict=False) if a != b)


def simulate(
    scenario: Scenario,
    policy_name: str,
    seed: int | None = None,
    params: dict[str, float] | None = None,
) -> RunResult:
    """Run one policy on one scenario; the same seed gives the same jobs and figures."""
    context = Context(
        role=scenario.role,
        service=scenario.service,
        scrape_interval=scenario.observation.scrape_interval,
    )
    merged = {**scenario.parameters.get(policy_name, {}), **(params or {})}
    return Simulation(scenario, build(policy_name, context, merged), seed).run()
