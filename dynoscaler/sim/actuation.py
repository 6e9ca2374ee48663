"""Where a policy's decision becomes a formation change: the one hand-off to the guardrails.

dynoscaler's decisions pass the scaler's guardrails (scaler.guardrails.decide:
clamp, cooldown before a scale-down, max_step, no scale-down on stale data, one
action per repeated request); baselines pass only the [min_dynos, max_dynos]
clamp, since they keep their own cooldowns.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynoscaler.config import RoleSettings


@dataclass
class Actuator:
    role: RoleSettings
    guarded: bool
    stale_after: float = 120.0
    last_action_at: float | None = None

    def target(self, desired: int, current: int, observed_at: float, now: float) -> int:
        """The count to set now (equal to current: no action)."""
        if not self.guarded:
            return min(max(desired, self.role.min_dynos), self.role.max_dynos)
        return self._guardrails(desired, current, observed_at, now)

    def applied(self, now: float) -> None:
        self.last_action_at = now

    def _guardrails(self, desired: int, current: int, observed_at: float, now: float) -> int:
        role = self.role
        wanted = min(max(desired, role.min_dynos), role.max_dynos)
        if wanted < current:
            stale = now - observed_at > self.stale_after
            cooling = self.last_action_at is not None and now - self.last_action_at < role.cooldown
            if stale or cooling:
                return current
        step = min(max(wanted - current, -role.max_step), role.max_step)
        return min(max(current + step, role.min_dynos), role.max_dynos)
