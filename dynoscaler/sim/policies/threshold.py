"""A queue-depth threshold step rule, as in seeds/003 (an ECS/CloudWatch set-up).

Out by `step` dynos when depth is above `out_above`; in by one when depth stayed
below `in_below` for `in_after` seconds; no action within `cooldown` seconds of
the last one.
"""

from __future__ import annotations

from dynoscaler.sim.observe import View
from dynoscaler.sim.policies.base import Context, Decision, Policy


class Threshold(Policy):
    name = "threshold"
    defaults = {
        "interval": 15.0,
        "out_above": 20.0,
        "in_below": 5.0,
        "in_after": 300.0,
        "cooldown": 60.0,
        "step": 1.0,
    }

    def __init__(self, context: Context, **params: float) -> None:
        super().__init__(context, **params)
        self._last_action = -float("inf")

    def decide(self, view: View, now: float, current: int) -> Decision:
        p = self.params
        if now - self._last_action < p["cooldown"]:
            return Decision(current)
        desired = current
        if view.latest("depth") > p["out_above"]:
            desired = current + int(p["step"])
        elif (
            now >= p["in_after"] and view.max_over_time("depth", now, p["in_after"]) < p["in_below"]
        ):
            desired = current - 1
        desired = min(max(desired, self.role.min_dynos), self.role.max_dynos)
        if desired != current:
            self._last_action = now
        return Decision(desired)
