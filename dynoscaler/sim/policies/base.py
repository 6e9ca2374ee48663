"""The one interface every simulated autoscaler implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from dynoscaler.config import ConfigError, RoleSettings
from dynoscaler.sim.observe import View
from dynoscaler.sim.service import Service

_COMMON = {"interval", "delay", "flag_for", "flag_delay"}


@dataclass(frozen=True)
class Decision:
    desired: int
    unmeetable: bool = False  # the policy says even max_dynos cannot meet the deadline
    slots: float | None = None  # slots needed at the current speed (None: unknown)


@dataclass(frozen=True)
class Context:
    """What a policy is configured with: the role's settings and the scenario's service
    (policies that take a configured processing time, like guv, read it from here)."""

    role: RoleSettings
    service: Service
    scrape_interval: float


class Policy(ABC):
    """Decides a dyno count every `interval` seconds from the Prometheus view alone.

    The decision reaches the formation `delay` seconds later. An unmeetable flag
    pages people once it has held at every decision for `flag_for` seconds, and
    `flag_delay` seconds after that (dynoscaler.sim.alerting.Pager); `guarded` policies
    go through the scaler's guardrails (dynoscaler), the others only through the
    [min_dynos, max_dynos] clamp (baselines keep their own cooldowns).
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, float]] = {}
    guarded: ClassVar[bool] = False

    def __init__(self, context: Context, **params: float) -> None:
        unknown = sorted(set(params) - set(self.defaults) - _COMMON)
        if unknown:
            known = ", ".join(sorted({*self.defaults, *_COMMON}))
            raise ConfigError(f"policy {self.name}: unknown parameter(s) {unknown}; known: {known}")
        self.context = context
        self.role = context.role
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.interval = float(self.params.get("interval", 15.0))
        self.delay = float(self.params.get("delay", 0.0))
        self.flag_for = float(self.params.get("flag_for", 0.0))
        self.flag_delay = float(self.params.get("flag_delay", self.delay))

    @abstractmethod
    def decide(self, view: View, now: float, current: int) -> Decision:
        """The count this policy wants now."""

    def delay_for(self, now: float, decision: Decision, current: int) -> float | None:
        """Seconds from the decision at `now` to its effect on the formation; None when
        it never reaches the formation."""
        return self.delay


def jobs_per_dyno(context: Context) -> float:
    """A default queue target users would pick: jobs one dyno finishes in half the deadline."""
    per_slot = context.role.target_deadline / 2 / context.service.mean
    return max(1.0, context.role.concurrency * per_slot)
