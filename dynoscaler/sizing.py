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
most SCALE_DOWN_BAND of the current capacity, as the model's counts go down:
the slots follow the queue, and a size change restarts every dyno, whose
backlog would ask for the larger size again (the simulator's size-only
scenario changed size every size_cooldown without it).
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
    down only once the need stayed lower that long, up at once. The needs measured
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
) -> SizeChoice:
    """The cheapest (size, count) of `role.sizes` covering `units` slots of speed 1;
    when none can, the largest capacity at max_dynos. `current` (size, count): a
    choice of less capacity only where units ≤ SCALE_DOWN_BAND of the current's,
    else the current size at the count it needs."""
    if not role.sizes:
        raise ValueError(f"{role.app}/{role.role} lists no sizes")
    best = _cheapest(units, role, prices)
    if current is not None and best.option != current[0]:
        option, count = current
        smaller = best.count * best.option.capacity < count * option.capacity
        if smaller and units > SCALE_DOWN_BAND * count * option.capacity:
            at_size = dataclasses.replace(role, sizes=(option,))
            return _cheapest(units, at_size, prices)
    return best


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
