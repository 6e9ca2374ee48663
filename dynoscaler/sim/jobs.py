"""The job trace of a scenario: arrival and processing times, drawn in blocks of ticks.

The same scenario and seed give the same jobs to every policy and to the lower
bound, so policies are compared on identical work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dynoscaler.sim.arrivals import Profile, draw_block
from dynoscaler.sim.service import Service

if TYPE_CHECKING:
    from dynoscaler.sim.scenario import Scenario

BLOCK_TICKS = 512


class JobSource:
    def __init__(self, profile: Profile, service: Service, tick: float, seed: int) -> None:
        self.profile, self.service, self.tick = profile, service, tick
        self._rng = np.random.default_rng(seed)
        self._first = 0
        self._bounds = np.zeros(1, dtype=np.int64)
        self._arrivals = np.empty(0)
        self._services = np.empty(0)

    @classmethod
    def of(cls, scenario: Scenario, seed: int | None = None) -> JobSource:
        """The scenario's trace (its own seed unless one is given)."""
        chosen = scenario.seed if seed is None else seed
        return cls(scenario.arrivals, scenario.service, scenario.tick, chosen)

    def jobs(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Arrival times and processing times of the jobs arriving in tick k (k rising by 1)."""
        i = k - self._first
        if i >= self._bounds.size - 1:
            self._draw(k)
            i = 0
        lo, hi = self._bounds[i], self._bounds[i + 1]
        return self._arrivals[lo:hi], self._services[lo:hi]

    def _draw(self, k: int) -> None:
        counts, self._arrivals = draw_block(self._rng, self.profile, k, BLOCK_TICKS, self.tick)
        self._services = self.service.sample(self._rng, self._arrivals.size)
        self._bounds = np.concatenate(([0], np.cumsum(counts)))
        self._first = k
