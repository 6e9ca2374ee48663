"""The simulated dynos of one role: booting, serving, draining, and their bill.

Heroku semantics as modelled here:
- a scale-up starts billing at the request and the dyno takes jobs after `boot_time`;
- a scale-down removes booting dynos first, then the newest serving ones (Heroku
  stops the highest-numbered dynos); a stopped dyno takes no new job, finishes
  the jobs it is running (as Sidekiq/Celery do on SIGTERM) and is billed until
  its last job is done. Nothing is requeued. Such a dyno's jobs are counted:
  `busy_stopped` jobs were running on a dyno when it was stopped, `cut` of them
  ran past Heroku's SIGTERM grace (SIGKILL: cut and retried on Heroku).
- `quiet` (scale_down_when_busy: quiet, scaler.quiet): a quieted dyno takes no new
  job and says so at the next scrape (`workers`, as Sidekiq's heartbeat does); a
  kept quieted dyno is restarted (`restart`: a boot, billed throughout);
- a size change (`resize`) stops every dyno as a scale-down would and starts the
  same count of the new size, booting; a row has as many slots as its size's
  concurrency, the columns beyond are never free (+inf).
"""

from __future__ import annotations

import numpy as np

from scaler.guardrails import SIGTERM_GRACE_SECONDS
from scaler.quiet import DynoJobs

_UNUSED, _RUNNING, _DRAINING = 0, 1, 2


class Formation:
    def __init__(self, concurrency: int, boot_time: float, initial: int) -> None:
        self.concurrency = concurrency
        self.boot_time = boot_time
        size = max(8, 2 * initial)
        self.free_at = np.zeros((size, concurrency))
        self.requested = np.zeros(size)
        self.ready = np.zeros(size)
        self.status = np.zeros(size, dtype=np.int8)
        self.quieted = np.zeros(size, dtype=bool)
        self.billed_seconds = 0.0
        self.boots = 0  # dynos started after the initial formation
        self.busy_stopped = 0  # jobs running on dynos when they were stopped
        self.cut = 0  # of those, jobs still running SIGTERM_GRACE_SECONDS later
        self._serving: np.ndarray | None = None  # cache, valid until _valid_until
        self._valid_until = 0.0
        self._draining = False
        for _ in range(initial):
            self._add(now=0.0, ready=0.0)

    @property
    def quantity(self) -> int:
        """The formation quantity Heroku reports: running dynos, booting ones included."""
        return int(np.count_nonzero(self.status == _RUNNING))

    def billed_now(self) -> int:
        return int(np.count_nonzero(self.status != _UNUSED))

    def serving_rows(self, now: float) -> np.ndarray:
        if self._serving is None or now >= self._valid_until:
            running = self.status == _RUNNING
            self._serving = np.flatnonzero(running & ~self.quieted & (self.ready <= now))
            booting = self.ready[running & (self.ready > now)]
            self._valid_until = booting.min() if booting.size else np.inf
        return self._serving

    def in_progress(self, now: float) -> int:
        """Jobs running now (a booting dyno's slots are free at its `ready`: no job)."""
        used = self.free_at[(self.status != _UNUSED) & (self.ready <= now)]
        return int(np.count_nonzero((used > now) & np.isfinite(used)))

    def busy_by_dyno(self, now: float) -> dict[int, int]:
        """Jobs running now on each running dyno by its number (worker.1 the oldest):
        Heroku numbers dynos in the order they were added and a scale-down stops the
        highest numbers, as scale_to does."""
        by_age = self._numbered()
        slots = self.free_at[by_age]
        busy = np.count_nonzero((slots > now) & np.isfinite(slots), axis=1)
        busy[self.ready[by_age] > now] = 0
        return {n: int(jobs) for n, jobs in enumerate(busy.tolist(), start=1)}

    def workers(self, now: float) -> dict[int, DynoJobs]:
        """Each running dyno's worker as the job library reports it: quiet, jobs running."""
        quiet = self.quieted[self._numbered()].tolist()
        return {n: DynoJobs(quiet[n - 1], jobs) for n, jobs in self.busy_by_dyno(now).items()}

    def quiet(self, numbers: list[int]) -> None:
        """The dynos numbered so take no new job (they finish the ones they run)."""
        if numbers:
            self._changed()
            self.quieted[self._numbered()[[n - 1 for n in numbers]]] = True

    def restart(self, numbers: list[int], now: float) -> None:
        """Restart quieted dynos (Heroku's dyno restart): a fresh process after boot_time."""
        rows = [row for row in self._numbered()[[n - 1 for n in numbers]] if self.quieted[row]]
        for row in rows:
            self._changed()
            self.quieted[row] = False
            self.ready[row] = now + self.boot_time
            self.free_at[row, : self.concurrency] = np.maximum(
                self.free_at[row, : self.concurrency], self.ready[row]
            )
            self.boots += 1

    def _numbered(self) -> np.ndarray:
        """The running rows in dyno-number order (worker.1 first)."""
        running = np.flatnonzero(self.status == _RUNNING)
        return running[np.lexsort((running, self.requested[running]))]

    def resize(self, concurrency: int, quantity: int, now: float) -> None:
        """A size change: every dyno stops (draining its jobs) and `quantity` dynos of
        `concurrency` slots boot."""
        for row in np.flatnonzero(self.status == _RUNNING):
            self._stop(int(row), now)
        if concurrency > self.free_at.shape[1]:
            extra = np.full((self.free_at.shape[0], concurrency - self.free_at.shape[1]), np.inf)
            self.free_at = np.hstack((self.free_at, extra))
        self.concurrency = concurrency
        for _ in range(quantity):
            self._add(now, now + self.boot_time)
        self.boots += quantity

    def scale_to(self, quantity: int, now: float) -> int:
        """Change the formation; return the change in dynos (+ up, - down)."""
        change = quantity - self.quantity
        for _ in range(change):
            self._add(now, now + self.boot_time)
        self.boots += max(change, 0)
        if change < 0:
            # the highest numbers (busy_by_dyno's order) first; booting dynos are the newest
            newest = self._numbered()[::-1][:-change]
            for row in newest:
                self._stop(int(row), now)
        return change

    def retire_drained(self, now: float) -> None:
        if not self._draining:
            return
        self._draining = False
        for row in np.flatnonzero(self.status == _DRAINING):
            if self._last_end(row) <= now:
                self.billed_seconds += self._last_end(row) - self.requested[row]
                self.status[row] = _UNUSED
            else:
                self._draining = True

    def close(self, now: float) -> float:
        """Bill everything still running at the end of a run; return total dyno-seconds."""
        for row in np.flatnonzero(self.status != _UNUSED):
            end = max(now, self._last_end(row))
            self.billed_seconds += end - self.requested[row]
            self.status[row] = _UNUSED
        return self.billed_seconds

    def _changed(self) -> None:
        self._serving = None

    def _add(self, now: float, ready: float) -> None:
        free_rows = np.flatnonzero(self.status == _UNUSED)
        if free_rows.size == 0:
            self._grow()
            free_rows = np.flatnonzero(self.status == _UNUSED)
        row = int(free_rows[0])
        self._changed()
        self.status[row] = _RUNNING
        self.quieted[row] = False
        self.requested[row] = now
        self.ready[row] = ready
        self.free_at[row] = np.inf  # the columns beyond this size's slots: never free
        self.free_at[row, : self.concurrency] = ready

    def _stop(self, row: int, now: float) -> None:
        self._changed()
        if self.ready[row] > now or self._last_end(row) <= now:
            self.billed_seconds += now - self.requested[row]
            self.status[row] = _UNUSED
        else:
            ends = self.free_at[row][np.isfinite(self.free_at[row])]
            self.busy_stopped += int(np.count_nonzero(ends > now))
            self.cut += int(np.count_nonzero(ends > now + SIGTERM_GRACE_SECONDS))
            self.status[row] = _DRAINING
            self._draining = True

    def _last_end(self, row: int) -> float:
        """When the row's last job ends (its slots only)."""
        ends = self.free_at[row]
        return float(ends[np.isfinite(ends)].max())

    def _grow(self) -> None:
        size = self.status.size
        self.free_at = np.vstack((self.free_at, np.zeros((size, self.free_at.shape[1]))))
        self.requested = np.concatenate((self.requested, np.zeros(size)))
        self.ready = np.concatenate((self.ready, np.zeros(size)))
        self.status = np.concatenate((self.status, np.zeros(size, dtype=np.int8)))
        self.quieted = np.concatenate((self.quieted, np.zeros(size, dtype=bool)))
