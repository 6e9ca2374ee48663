"""How a ScaleRole decision reaches the scaler, and a DeadlineUnmeetable page
reaches people: Prometheus' alert state and Alertmanager's notification times,
as prometheus/rules/alerts.yml and alertmanager/alertmanager.yml configure them.

- ScaleRole fires only while the desired count differs from the formation; an
  evaluation where they agree sends nothing (the alert resolves). It has no
  `for:` in either direction; a change of direction starts the other alert.
- Alertmanager notifies `group_wait` after the alert fires, then every
  `repeat_interval` while it keeps firing, each time with the desired count of
  the newest evaluation (Prometheus re-sends every evaluation with
  `--rules.alert.resend-delay` at the evaluation interval).
- A page (Pager) follows an alert with a `for:`: pending from the first
  evaluation whose condition is true, firing once the condition has been true
  at every evaluation for `for_seconds`, reset by any evaluation where it is
  false. The ops route notifies `group_wait` after it fires, if it is still
  firing then (an alert resolved before its group is flushed sends nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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


@dataclass
class Pager:
    for_seconds: float = 60.0
    group_wait: float = 30.0
    pages: list[tuple[float, float]] = field(default_factory=list)  # (notified, resolved)
    _pending_since: float | None = None
    _paged: bool = False

    def update(self, now: float, condition: bool) -> None:
        """One evaluation of the alert's condition."""
        if not condition:
            self._resolve(now)
            return
        if self._pending_since is None:
            self._pending_since = now
        fired = self._pending_since + self.for_seconds
        if not self._paged and now >= fired + self.group_wait:
            self.pages.append((fired + self.group_wait, math.inf))
            self._paged = True

    def close(self, now: float) -> tuple[tuple[float, float], ...]:
        """The pages sent, each with when it resolved (`now` for one still firing)."""
        self._resolve(now)
        return tuple(self.pages)

    def _resolve(self, now: float) -> None:
        if self._paged:
            self.pages[-1] = (self.pages[-1][0], now)
        self._pending_since, self._paged = None, False
