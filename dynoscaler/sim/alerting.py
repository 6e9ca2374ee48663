"""How a ScaleRole decision reaches the scaler, and a DeadlineUnmeetable page
reaches people: Prometheus' alert state and Alertmanager's notification times,
with the timings the project ships (dynoscaler.sim.alert_config).

- ScaleRole fires only while the desired count differs from the formation; an
  evaluation where they agree resolves it. It has no `for:` in either
  direction; a change of direction resolves one alert and fires the other.
- Prometheus sends a firing alert to Alertmanager at the evaluation it fires
  and then at the first evaluation more than `--rules.alert.resend-delay` after
  its last send (a resolved one at once). With the resend delay equal to the
  evaluation interval that is every second evaluation: the delay must have
  passed strictly, and evaluations are exactly one interval apart.
- Alertmanager keeps one group per role (both directions). A new group is
  flushed `group_wait` after its first alert, then every `group_interval`. A
  flush notifies the scaler when the firing alerts changed since its last
  notification (a new alert or direction), an alert resolved meanwhile
  (send_resolved), or more than `repeat_interval` has passed since the last
  one: a changed desired_dynos annotation alone waits for that, and with
  repeat_interval equal to group_interval the repeat comes every second flush
  (the last notification was logged after its flush, so one group_interval
  later it is not yet old enough). The scaler acts on the count Alertmanager
  last received. A group lives while Prometheus sends it alerts: a resolved
  alert is re-sent for 15 minutes, so an alert firing again within that time
  waits for the group's next flush.
- A page (Pager) follows an alert with a `for:`: pending from the first
  evaluation whose condition is true, firing once the condition has been true
  at every evaluation for `for_seconds`, reset by any evaluation where it is
  false. The ops route notifies `group_wait` after it fires, if it is still
  firing then (an alert resolved before its group is flushed sends nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Prometheus re-sends a resolved alert this long (its resolvedRetention, not configurable)
RESOLVED_RETENTION = 900.0
# evaluation times are exact multiples of the interval: compare them with this tolerance
_EPSILON = 1e-9


@dataclass
class ScaleAlert:
    resend_delay: float = 5.0
    group_wait: float = 0.0
    group_interval: float = 10.0
    repeat_interval: float = 10.0
    _direction: int = 0  # the firing alert's direction (0: none)
    _sent_at: float = -math.inf  # Prometheus' last send of the firing alert
    _resolved_at: float = -math.inf  # the last resolve
    _next_flush: float | None = None  # the group's next flush; None: no group
    _notified_at: float = -math.inf
    _notified_direction: int = 0  # the firing alert of the last notification
    _resolved_since_notified: bool = False

    def delay(self, now: float, desired: int, current: int) -> float | None:
        """Seconds until the scaler hears of this evaluation's count; None: never (the
        count is not sent, or Alertmanager holds an earlier one)."""
        self._flush_until(now)
        direction = (desired > current) - (desired < current)
        if direction != self._direction:
            if self._direction:
                self._resolved_at, self._resolved_since_notified = now, True
            self._direction, self._sent_at = direction, -math.inf
        if not direction or now <= self._sent_at + self.resend_delay + _EPSILON:
            return None
        self._sent_at = now
        if self._next_flush is None:
            self._next_flush = now + self.group_wait
        flush = self._next_flush
        while not self._notifies(flush):
            flush += self.group_interval
        return flush - now

    def _flush_until(self, now: float) -> None:
        """Alertmanager's flushes before `now` (one at `now` sees this evaluation's send)."""
        while self._next_flush is not None and self._next_flush < now - _EPSILON:
            flush = self._next_flush
            if self._notifies(flush):
                self._notified_at, self._notified_direction = flush, self._direction
                self._resolved_since_notified = False
            alive = self._direction or flush < self._resolved_at + RESOLVED_RETENTION
            self._next_flush = flush + self.group_interval if alive else None

    def _notifies(self, flush: float) -> bool:
        if not self._direction:  # only resolved alerts: nothing for the scaler to act on
            return self._resolved_since_notified and self._notified_direction != 0
        return (
            self._direction != self._notified_direction
            or self._resolved_since_notified
            or flush - self._notified_at > self.repeat_interval + _EPSILON
        )


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
