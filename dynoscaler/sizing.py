"""Dyno sizes for roles that cannot (or should not only) scale out.

A role that lists `sizes:` is sized in slots of speed 1: the rules measure the
slots a role needs at the speed it runs at now (S is measured there), so the
need in slots of speed 1 is those slots times the current size's speed. A dyno
of size s is worth concurrency_s · speed_s such slots (SizeOption.capacity).
The choice is the cheapest (size, count) within [min_dynos, max_dynos] whose
capacity covers the need, by the price table (dynoscaler.prices); on a tie the
larger capacity, then the order of the list. Sizing in slots is conservative
about the deadline: a faster dyno also shortens S, which widens the drain
window the slots were computed for.

A smaller formation than the current one is chosen only once the need is at
most SCALE_DOWN_BAND of the smaller formation's capacity: the cheapest covering
need / SCALE_DOWN_BAND. The model's counts go down once the need is within the
band of the current slots, and a count that proves short costs one dyno's boot;
a size that proves short costs a restart of every dyno (with one dyno, an
outage of boot_time), so the headroom is kept on the side of the smaller size.
With the band on the current capacity only, the simulator's size-only scenario
went down to a size the need filled to 58%, whose ordinary ups (the slots follow
a 1-minute rate) asked the larger size back: 17-19 changes in 4 h.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass

from dynoscaler.config import RoleSettings, SizeOption
from dynoscaler.model import SCALE_DOWN_BAND
from dynoscaler.prices import Prices

# ceil() must not turn 2.0000000000000004 dynos into 3.
_CEIL_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SizeChoice:
    option: SizeOption
    count: int
    hourly: float  # dollars per hour of the whole formation of the role
    meets: bool  # count · capacity covers the need (False: the most capacity there is)

    @property
    def size(self) -> str:
        return self.option.size

    def describe(self, units: float) -> str:
        covered = "covers" if self.meets else "is the most there is, short of"
        return (
            f"{self.count} x {self.size} ({self.count * self.option.capacity:g} slots of "
            f"speed 1, ${self.hourly:.4f}/h) {covered} the need of {units:.4g}"
        )


class SizeNeed:
    """The largest need of the last `window_seconds` (both ends included): a size goes
    down only once the need stayed lower that long (choose_size's `recent`), up at
    once on the need of the moment. The needs measured
    until `changed(until)`'s time are the size change's own (its dynos restarting:
    their backlog) and left out of later windows."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._history: deque[tuple[float, float]] = deque()
        self._own_until = -math.inf

    def changed(self, until: float) -> None:
        self._history.clear()
        self._own_until = until

    def update(self, now: float, units: float) -> float:
        if now > self._own_until:
            self._history.append((now, units))
        while self._history and self._history[0][0] < now - self.window_seconds:
            self._history.popleft()
        return max([units, *(u for _, u in self._history)])


def units_needed(slots: float, current: SizeOption) -> float:
    """Slots of speed 1 for `slots` measured at the current size's speed."""
    return max(slots, 0.0) * current.speed


def choose_size(
    units: float,
    role: RoleSettings,
    prices: Prices,
    current: tuple[SizeOption, int] | None = None,
    recent: float | None = None,
) -> SizeChoice:
    """The cheapest (size, count) of `role.sizes` covering `units` slots of speed 1;
    when none can, the largest capacity at max_dynos. `current` (size, count): a
    choice of another size goes up on `units` (the need now), down only where
    `recent` (the largest need of the window SizeNeed keeps; default `units`) is at
    most SCALE_DOWN_BAND of its capacity; else the current size at the count
    `recent` needs."""
    if not role.sizes:
        raise ValueError(f"{role.app}/{role.role} lists no sizes")
    best = _cheapest(units, role, prices)
    if current is None:
        return best
    option, count = current
    capacity = count * option.capacity
    if best.option != option and best.count * best.option.capacity >= capacity:
        return best
    recent = units if recent is None else max(units, recent)
    banded = _cheapest(recent / SCALE_DOWN_BAND, role, prices)
    if banded.option != option and banded.count * banded.option.capacity < capacity:
        return dataclasses.replace(banded, meets=True)
    at_size = dataclasses.replace(role, sizes=(option,))
    return _cheapest(recent, at_size, prices)


def _cheapest(units: float, role: RoleSettings, prices: Prices) -> SizeChoice:
    options = []
    for index, option in enumerate(role.sizes):
        count = max(role.min_dynos, math.ceil(units / option.capacity - _CEIL_TOLERANCE))
        meets = count <= role.max_dynos
        count = min(count, role.max_dynos)
        hourly = count * prices.hourly(option.size)
        options.append((not meets, hourly, -count * option.capacity, index, count, option))
    if any(not missing for missing, *_ in options):
        best = min(o for o in options if not o[0])
    else:
        best = min(options, key=lambda o: (o[2], o[1], o[3]))  # most capacity, then cheapest
    missing, hourly, _, _, count, option = best
    return SizeChoice(option, count, hourly, not missing)
