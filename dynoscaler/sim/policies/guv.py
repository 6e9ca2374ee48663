"""guv's model (flowhub/guv), as its code computes it.

Processing time is configured (mean; stddev defaults to mean/2); the target time
is the deadline less 2.33 standard deviations (99th percentile); the worker count
comes from the queue length alone: ceil(ceil(Q / c) * mean / max(mean, target - mean)).
Scale-up is immediate; scale-down goes no lower than the largest estimate of the
history window (120 s of 30 s polls). Boot time is unused and the arrival rate is
ignored; an estimate above max_dynos is only a warning, counted here as its flag.
"""

from __future__ import annotations

import math
from collections import deque

from dynoscaler.sim.observe import View
from dynoscaler.sim.policies.base import Context, Decision, Policy


def guv_workers(queue: float, concurrency: int, mean: float, stddev: float, deadline: float) -> int:
    target = deadline - 2.33 * stddev
    return math.ceil(math.ceil(queue / concurrency) * mean / max(mean, target - mean))


class Guv(Policy):
    name = "guv"
    defaults = {"interval": 30.0, "history": 120.0, "mean": 0.0, "stddev": 0.0}

    def __init__(self, context: Context, **params: float) -> None:
        super().__init__(context, **params)
        self.mean = self.params["mean"] or context.service.mean
        self.stddev = self.params["stddev"] or self.mean / 2
        self._history: deque[tuple[float, int]] = deque()

    def decide(self, view: View, now: float, current: int) -> Decision:
        role = self.role
        estimate = guv_workers(
            view.latest("depth"), role.concurrency, self.mean, self.stddev, role.target_deadline
        )
        self._history.append((now, estimate))
        while self._history[0][0] <= now - self.params["history"]:
            self._history.popleft()
        wanted = max(estimate, max(count for _, count in self._history))
        clamped = min(max(wanted, role.min_dynos), role.max_dynos)
        return Decision(clamped, unmeetable=estimate > role.max_dynos)
