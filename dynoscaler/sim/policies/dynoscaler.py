"""dynoscaler's own model (dynoscaler.model), fed the way the PromQL rules feed it.

Every rule evaluation (5 s) computes, from the scraped series only:
  λ = rate(completed[1m]) + deriv(depth[1m]) + deriv(in_progress[1m]), at least 0
  S = rate(duration_sum[1m]) / rate(duration_count[1m])   (unknown while nothing completes;
      at zero dynos the last S measured within 10m)
  S₁₀ = the sum over 10m of the recorded numerators / of the denominators (cold-start window)
  S₉₉ = histogram_quantile(0.99, rate(duration_bucket[1h]))             (cold-start window;
      recorded once a minute, its rule group's interval, and read as last recorded)
  dλ/dt = deriv(λ[5m]) over the recorded λ series, 0 until λ was recorded a minute ago
then required_capacity() and the ScaleDownStabiliser (max over the role's
scale_down_window, rounded as the rules round it). ScaleRole reaches the scaler,
where the guardrails apply (cooldown, max_step, clamp), when Alertmanager
notifies (dynoscaler.sim.alerting.ScaleAlert: Prometheus' `resend_delay`, the
scale route's `group_wait`, `group_interval` and `repeat_interval`) and `delay`
seconds after that (the webhook and the Heroku API; 0 by default);
DeadlineUnmeetable pages people as Prometheus and Alertmanager would
(dynoscaler.sim.alerting.Pager): once the model's unmeetable flag has held at
every evaluation for `flag_for` seconds (its `for:`), `flag_delay` seconds
later (the ops route's group_wait), if it still holds then. The intervals,
the alert's `for:` and the routes' timings default to the project's own files
(dynoscaler.sim.alert_config), so a change there shows here.
"""

from __future__ import annotations

from collections import deque

from dynoscaler.model import RoleInputs, ScaleDownStabiliser, required_capacity, rules_window
from dynoscaler.sim.alert_config import shipped
from dynoscaler.sim.alerting import ScaleAlert
from dynoscaler.sim.observe import View, slope
from dynoscaler.sim.policies.base import Context, Decision, Policy

_PATH = shipped()


class Dynoscaler(Policy):
    name = "dynoscaler"
    guarded = True
    defaults = {
        "interval": _PATH.evaluation_interval,
        "rate_window": 60.0,
        "slope_window": 300.0,
        "slope_history": 60.0,
        "s_memory": 600.0,
        "job_quantile": 0.99,
        "job_quantile_window": 3600.0,
        "job_quantile_interval": _PATH.tail_interval,
        "resend_delay": _PATH.resend_delay,
        "group_wait": _PATH.scale_group_wait,
        "group_interval": _PATH.scale_group_interval,
        "repeat_interval": _PATH.scale_repeat_interval,
        "flag_for": _PATH.page_for,
        "flag_delay": _PATH.page_group_wait,
    }

    def __init__(self, context: Context, **params: float) -> None:
        super().__init__(context, **params)
        self.stabiliser = ScaleDownStabiliser(rules_window(context.role.scale_down_window))
        self.alert = ScaleAlert(
            self.params["resend_delay"],
            self.params["group_wait"],
            self.params["group_interval"],
            self.params["repeat_interval"],
        )
        self._rates: deque[tuple[float, float]] = deque()  # the recorded λ series
        # (time, duration_sum increase, duration_count increase) of each evaluation
        # that measured S, the last s_memory seconds: the rules' S parts, recorded
        self._measured: deque[tuple[float, float, float]] = deque()
        self._work_total = self._jobs_total = 0.0  # their sums (S₁₀'s numerator, denominator)
        self._tail: tuple[float, float | None] | None = None  # S₉₉ as last recorded: (at, value)

    def inputs(self, view: View, now: float, current: int) -> RoleInputs:
        window = self.params["rate_window"]
        completions = view.rate("completed", now, window)
        rate = None
        if completions is not None:
            growth = (view.deriv("depth", now, window) or 0.0) + (
                view.deriv("in_progress", now, window) or 0.0
            )
            rate = max(completions + growth, 0.0)
        processing = self._processing(view, now, current)
        return RoleInputs(
            arrival_rate=rate,
            processing_seconds=processing,
            processing_seconds_10m=self._pooled(),
            processing_seconds_p99=self._processing_tail(view, now),
            backlog=view.latest("depth"),
            in_progress=view.latest("in_progress"),
            oldest_age_seconds=view.latest("oldest_age"),
            arrival_rate_slope=self._slope(now, rate),
            current_dynos=current,
        )

    def decide(self, view: View, now: float, current: int) -> Decision:
        capacity = required_capacity(self.inputs(view, now, current), self.role)
        desired = self.stabiliser.update(now, capacity)
        slots = None if capacity.holding else capacity.required_slots
        return Decision(desired, unmeetable=capacity.unmeetable, slots=slots)

    def _processing(self, view: View, now: float, current: int) -> float | None:
        """S over the rate window; at zero dynos, where nothing completes, the last S
        measured within s_memory seconds (the rules' last_over_time)."""
        window = self.params["rate_window"]
        count = view.increase("duration_count", now, window)
        measured = count is not None and count[0] > 0
        if measured:
            work = view.increase("duration_sum", now, window)[0]
            self._measured.append((now, work, count[0]))
            self._work_total += work
            self._jobs_total += count[0]
        while self._measured and self._measured[0][0] < now - self.params["s_memory"]:
            _, old_work, old_jobs = self._measured.popleft()
            self._work_total -= old_work
            self._jobs_total -= old_jobs
        if measured or (current == 0 and self._measured):
            _, work, jobs = self._measured[-1]
            return work / jobs
        return None

    def _processing_tail(self, view: View, now: float) -> float | None:
        """S₉₉ as its own rule group records it, every job_quantile_interval seconds; the
        capacity group reads the last value (absent when the last evaluation had none)."""
        if self._tail is None or now >= self._tail[0] + self.params["job_quantile_interval"]:
            quantile = view.duration_quantile(
                self.params["job_quantile"], now, self.params["job_quantile_window"]
            )
            self._tail = (now, quantile)
        return self._tail[1]

    def _pooled(self) -> float | None:
        """S over the completions of the last s_memory seconds (the rules' S pooled over
        10m: the sum over time of the recorded parts of S, divided)."""
        return self._work_total / self._jobs_total if self._measured else None

    def delay_for(self, now: float, decision: Decision, current: int) -> float | None:
        """When Alertmanager notifies, plus `delay` (the webhook and Heroku API; 0 s)."""
        notified = self.alert.delay(now, decision.desired, current)
        return None if notified is None else notified + self.delay

    def _slope(self, now: float, rate: float | None) -> float:
        if rate is None:
            return 0.0
        self._rates.append((now, rate))
        while self._rates[0][0] < now - self.params["slope_window"]:
            self._rates.popleft()
        if self._rates[0][0] > now - self.params["slope_history"]:
            return 0.0  # the rules' present_over_time(λ[4m] offset 1m): no trend yet
        times, rates = zip(*self._rates, strict=True)
        return slope(times, rates) or 0.0
