"""HireFire's classic job-queue rule: a ratio of jobs per dyno.

desired = ceil(jobs / ratio) with jobs = waiting plus running (HireFire's worker
macros count both); zero dynos when there are no jobs. HireFire's manager checks
once a minute.
"""

from __future__ import annotations

import math

from dynoscaler.sim.observe import View
from dynoscaler.sim.policies.base import Context, Decision, Policy, jobs_per_dyno


def hirefire_dynos(jobs: float, ratio: float) -> int:
    return 0 if jobs <= 0 else math.ceil(jobs / ratio)


class HireFire(Policy):
    name = "hirefire"
    defaults = {"interval": 60.0, "ratio": 0.0}  # ratio 0: jobs one dyno finishes in D/2

    def __init__(self, context: Context, **params: float) -> None:
        super().__init__(context, **params)
        self.ratio = self.params["ratio"] or jobs_per_dyno(context)

    def decide(self, view: View, now: float, current: int) -> Decision:
        jobs = view.latest("depth") + view.latest("in_progress")
        wanted = hirefire_dynos(jobs, self.ratio)
        return Decision(min(max(wanted, self.role.min_dynos), self.role.max_dynos))
