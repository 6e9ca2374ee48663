"""Where a policy's decision becomes a formation change: the one hand-off to the guardrails.

dynoscaler's decisions pass the scaler's own guardrails (scaler.guardrails.decide:
clamp, cooldown before a scale-down, max_step, no scale-down on stale data, one
action per repeated request), exactly as the webhook applies them. Baselines
pass only the [min_dynos, max_dynos] clamp, since they keep their own cooldowns.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynoscaler.config import RoleSettings
from scaler import guardrails


@dataclass
class Actuator:
    role: RoleSettings
    guarded: bool
    stale_after: float = 120.0
    last_action_at: float | None = None

    def target(
        self,
        desired: int,
        current: int,
        observed_at: float,
        now: float,
        busy: guardrails.Busy | None = None,
    ) -> int:
        """The count to set now (equal to current: no action). busy: the jobs in
        progress as last observed, for the role's scale_down_when_busy."""
        if not self.guarded:
            return guardrails.clamp(desired, self.role.min_dynos, self.role.max_dynos)
        verdict = guardrails.decide(
            guardrails.Request(desired=desired, observed_at=observed_at),
            guardrails.State(current=current, last_action_at=self.last_action_at),
            guardrails.Policy.of(self.role),
            now,
            self.stale_after,
        )
        target = current if verdict.target is None else verdict.target
        if current > target and current <= self.role.max_dynos:
            mode, slots = self.role.scale_down_when_busy, self.role.concurrency
            if guardrails.busy_refusal(mode, busy, target, slots):
                return current
        return target

    def applied(self, now: float) -> None:
        self.last_action_at = now
