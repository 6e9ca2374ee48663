"""How a ScaleRole decision reaches the scaler: Prometheus' alert state and
Alertmanager's notification times, as prometheus/rules/alerts.yml and
alertmanager/alertmanager.yml configure them.

- ScaleRole fires only while the desired count differs from the formation; an
  evaluation where they agree sends nothing (the alert resolves). It has no
  `for:` in either direction; a change of direction starts the other alert.
- Alertmanager notifies `group_wait` after the alert fires, then every
  `repeat_interval` while it keeps firing, each time with the desired count of
  the newest evaluation (Prometheus re-sends every evaluation with
  `--rules.alert.resend-delay` at the evaluation interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ScaleAlert:
    group_wait: float = 0.0
    repeat_interval: float = 10.0
    _direction: int = 0
    _fired_at: float | None = None

    def delay(self, now: float, desired: int, current: int) -> float | None:
        """Seconds until the scaler hears of this evaluation's count; None: never."""
        direction = (desired > current) - (desired < current)
        if direction != self._direction:
            self._direction, self._fired_at = direction, None
        if direction == 0:
            return None
        if self._fired_at is None:
            self._fired_at = now
            return self.group_wait
        first = self._fired_at + self.group_wait
        repeats = math.floor((now - first) / self.repeat_interval) + 1
        return first + repeats * self.repeat_interval - now
