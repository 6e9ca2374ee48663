"""A proportional target-per-dyno rule, as Kubernetes' HPA computes it (and KEDA drives it).

desired = ceil(current * metric / target) with metric = jobs per dyno (waiting
plus running, as KEDA's RabbitMQ queue-length trigger counts them); no change
within a 10% tolerance; scale-up limited per sync period to the larger of +100%
and +4 (HPA's default behaviour); scale-down stabilised by taking the largest
recommendation of the last 300 s. At zero dynos, KEDA's activation sets the
count straight from the metric. HPA syncs every 15 s, KEDA polls every 30 s.
"""

from __future__ import annotations

import math
from collections import deque

from dynoscaler.sim.observe import View
from dynoscaler.sim.policies.base import Context, Decision, Policy, jobs_per_dyno


def hpa_recommendation(current: int, jobs: float, target: float, tolerance: float) -> int:
    if current == 0:
        return math.ceil(jobs / target)
    ratio = (jobs / current) / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return math.ceil(current * ratio)


class Proportional(Policy):
    name = "hpa"
    defaults = {
        "interval": 15.0,
        "target": 0.0,  # jobs per dyno; 0: jobs one dyno finishes in half the deadline
        "tolerance": 0.1,
        "stabilisation": 300.0,
    }

    def __init__(self, context: Context, **params: float) -> None:
        super().__init__(context, **params)
        self.target = self.params["target"] or jobs_per_dyno(context)
        self._recommendations: deque[tuple[float, int]] = deque()

    def decide(self, view: View, now: float, current: int) -> Decision:
        jobs = view.latest("depth") + view.latest("in_progress")
        wanted = hpa_recommendation(current, jobs, self.target, self.params["tolerance"])
        self._recommendations.append((now, wanted))
        while self._recommendations[0][0] <= now - self.params["stabilisation"]:
            self._recommendations.popleft()
        if wanted < current:
            wanted = min(current, max(r for _, r in self._recommendations))
        elif current > 0:
            wanted = min(wanted, max(2 * current, current + 4))
        return Decision(min(max(wanted, self.role.min_dynos), self.role.max_dynos))


class Keda(Proportional):
    name = "keda"
    defaults = {**Proportional.defaults, "interval": 30.0}
