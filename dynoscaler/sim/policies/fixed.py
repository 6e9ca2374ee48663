"""A fixed dyno count: no autoscaling (a reference, and the queueing-theory check)."""

from __future__ import annotations

from dynoscaler.sim.observe import View
from dynoscaler.sim.policies.base import Decision, Policy


class Fixed(Policy):
    name = "fixed"
    defaults = {"interval": 60.0, "dynos": 0.0}  # dynos 0: max_dynos

    def decide(self, view: View, now: float, current: int) -> Decision:
        return Decision(int(self.params["dynos"]) or self.role.max_dynos)
