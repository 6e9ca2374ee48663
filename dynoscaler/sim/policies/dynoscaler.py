"""dynoscaler's own model (dynoscaler.model), fed the way the PromQL rules feed it.

Every rule evaluation (15 s) computes, from the scraped series only:
  λ = rate(completed[1m]) + deriv(depth[1m]) + deriv(in_progress[1m]), at least 0
  S = rate(duration_sum[1m]) / rate(duration_count[1m])   (unknown while nothing completes)
  dλ/dt = deriv(λ[5m]) over the recorded λ series
then required_capacity() and the ScaleDownStabiliser (max over the role's
scale_down_window, rounded as the rules round it). The ScaleRole alert reaches the
scaler `delay` seconds later (Alertmanager group_wait and webhook), where the
scaler's guardrails apply (cooldown, max_step, clamp).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from dynoscaler.config import RoleSettings
from dynoscaler.model import (
    Capacity,
    RoleInputs,
    ScaleDownStabiliser,
    required_capacity,
    rules_window,
    staffing_beta,
)
from dynoscaler.sim.observe import View, slope
from dynoscaler.sim.policies.base import Context, Decision, Policy


class Dynoscaler(Policy):
    name = "dynoscaler"
    guarded = True
    defaults = {"interval": 15.0, "rate_window": 60.0, "slope_window": 300.0}

    def __init__(self, context: Context, **params: float) -> None:
        params.setdefault("delay", context.alert_delay)
        super().__init__(context, **params)
        self.stabiliser = ScaleDownStabiliser(rules_window(context.role.scale_down_window))
        self._rates: deque[tuple[float, float]] = deque()  # the recorded λ series

    def inputs(self, view: View, now: float, current: int) -> RoleInputs:
        window = self.params["rate_window"]
        completions = view.rate("completed", now, window)
        rate = None
        if completions is not None:
            growth = (view.deriv("depth", now, window) or 0.0) + (
                view.deriv("in_progress", now, window) or 0.0
            )
            rate = max(completions + growth, 0.0)
        change = view.increase("duration_count", now, window)
        processing = None
        if change is not None and change[0] > 0:
            processing = view.increase("duration_sum", now, window)[0] / change[0]
        return RoleInputs(
            arrival_rate=rate,
            processing_seconds=processing,
            backlog=view.latest("depth"),
            in_progress=view.latest("in_progress"),
            oldest_age_seconds=view.latest("oldest_age"),
            arrival_rate_slope=self._slope(now, rate),
            current_dynos=current,
        )

    def decide(self, view: View, now: float, current: int) -> Decision:
        capacity = self.capacity(self.inputs(view, now, current))
        desired = self.stabiliser.update(now, capacity.desired_dynos)
        return Decision(desired, unmeetable=capacity.unmeetable)

    def capacity(self, inputs: RoleInputs) -> Capacity:
        return required_capacity(inputs, self.role)

    def _slope(self, now: float, rate: float | None) -> float:
        if rate is None:
            return 0.0
        self._rates.append((now, rate))
        while self._rates[0][0] < now - self.params["slope_window"]:
            self._rates.popleft()
        times, rates = zip(*self._rates, strict=True)
        return slope(times, rates) or 0.0


def proposed_capacity(inputs: RoleInputs, role: RoleSettings) -> Capacity:
    """The model with the changes the simulator argues for (docs/simulator.md), composed
    from required_capacity so that nothing of the model is copied:

    1. a deadline-aware margin: min(β·√a, ln(1/miss_ratio)·S/(D − S)) slots. In M/M/N,
       P(wait > t) = C·exp(−(N − a)·t/S) with C ≤ 1, so N − a ≥ S·ln(1/ε)/(D − S) already
       keeps the share of jobs waiting past D − S under ε; β·√a (P(wait > 0) ≤ ε) is
       far more than a deadline needs when D ≫ S;
    2. slots = max(a + margin, drain) instead of their sum: capacity for the arrivals
       also drains the backlog, so that jobs wait at most about W = D − S − B;
    3. unmeetable judged without the look-ahead (the look-ahead sizes dynos for a
       rise that may stop, and must not page people).
    Holding and idle answers (unknown inputs) are the model's own.
    """
    if inputs.arrival_rate is None or inputs.processing_seconds is None:
        return required_capacity(inputs, role)
    arrivals = replace(inputs, backlog=0.0)
    load = required_capacity(arrivals, _deadline_margin(arrivals, role))
    steady_arrivals = replace(arrivals, arrival_rate_slope=0.0)
    steady = required_capacity(steady_arrivals, _deadline_margin(steady_arrivals, role))
    drain = required_capacity(
        replace(steady_arrivals, arrival_rate=0.0, backlog=inputs.backlog), role
    )
    chosen = load if load.required_slots >= drain.required_slots else drain
    needed = max(load.needed_dynos, drain.needed_dynos)
    return replace(
        chosen,
        needed_dynos=needed,
        desired_dynos=min(max(needed, role.min_dynos), role.max_dynos),
        unmeetable=steady.unmeetable or drain.unmeetable,
    )


def _deadline_margin(inputs: RoleInputs, role: RoleSettings) -> RoleSettings:
    """The role with the miss ratio whose β gives the deadline-aware margin (change 1)."""
    s = inputs.processing_seconds or 0.0
    load = (inputs.arrival_rate or 0.0) + max(inputs.arrival_rate_slope, 0.0) * role.boot_time
    load *= s
    slack = role.target_deadline - s
    if load <= 0 or slack <= 0:
        return role
    tail = math.log(1 / role.miss_ratio) * s / (slack * math.sqrt(load))
    beta = min(staffing_beta(role.miss_ratio), tail)
    miss_ratio = 0.5 * math.erfc(beta / math.sqrt(2))
    return replace(role, miss_ratio=min(max(miss_ratio, 1e-9), 0.4999))


class DynoscalerProposed(Dynoscaler):
    """dynoscaler with proposed_capacity and a 180 s scale-down window."""

    name = "dynoscaler-proposed"
    defaults = {**Dynoscaler.defaults, "scale_down_window": 180.0}

    def __init__(self, context: Context, **params: float) -> None:
        super().__init__(context, **params)
        self.stabiliser = ScaleDownStabiliser(rules_window(self.params["scale_down_window"]))

    def capacity(self, inputs: RoleInputs) -> Capacity:
        return proposed_capacity(inputs, self.role)
