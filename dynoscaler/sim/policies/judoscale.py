"""Judoscale's queue-latency rule.

Queue time is the oldest waiting job's age (the max over the role's queues).
Above the range's upper end: up by one dyno, unless there was an upscale in the
last 3 minutes. Below the lower end for 10 minutes: down by one. Judoscale
checks every 10 s. The default range is a sixth to a thirtieth of the deadline.
"""

from __future__ import annotations

from dynoscaler.sim.observe import View
from dynoscaler.sim.policies.base import Context, Decision, Policy


class Judoscale(Policy):
    name = "judoscale"
    defaults = {
        "interval": 10.0,
        "upper": 0.0,  # seconds; 0: deadline / 6
        "lower": 0.0,  # seconds; 0: deadline / 30
        "upscale_wait": 180.0,
        "downscale_after": 600.0,
    }

    def __init__(self, context: Context, **params: float) -> None:
        super().__init__(context, **params)
        deadline = context.role.target_deadline
        self.upper = self.params["upper"] or deadline / 6
        self.lower = self.params["lower"] or deadline / 30
        self._last_up = -float("inf")
        self._last_down = -float("inf")

    def decide(self, view: View, now: float, current: int) -> Decision:
        p = self.params
        latency = view.latest("oldest_age")
        desired = current
        if latency > self.upper and now - self._last_up >= p["upscale_wait"]:
            desired, self._last_up = current + 1, now
        elif self._below_long_enough(view, now) and now - self._last_down >= p["downscale_after"]:
            desired, self._last_down = current - 1, now
        return Decision(min(max(desired, self.role.min_dynos), self.role.max_dynos))

    def _below_long_enough(self, view: View, now: float) -> bool:
        after = self.params["downscale_after"]
        return now >= after and view.max_over_time("oldest_age", now, after) < self.lower
