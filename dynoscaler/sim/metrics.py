"""Per-run tallies of job outcomes, and the figures a run reports.

Every job that started is counted when it starts (its end is known then), in
batches of about _BATCH_JOBS jobs: one NumPy pass per batch instead of one per
tick. Jobs still waiting when the run ends count as misses if their deadline
had passed, and are left out otherwise. p99 comes from a log-spaced histogram
(0.5% relative resolution), so a day of 86 million jobs needs no per-job
storage. Late jobs are also counted per second of the moment they passed their
deadline (Misses), which the pages are judged against (dynoscaler.sim.pages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from exporter.metrics import DURATION_BUCKETS

_BIN_BASE = 1.01  # histogram bins grow 1% per bin: p99 within ~0.5%
_BIN_MIN = 1e-4  # seconds; smaller sojourns share the first bin
_BINS = int(math.log(1e7 / _BIN_MIN) / math.log(_BIN_BASE)) + 1
_BATCH_JOBS = 1 << 16
_BOUNDS = np.asarray(DURATION_BUCKETS)  # a job of exactly a bound's length is in its bucket


class Tally:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.jobs = 0  # started, plus unfinished ones past their deadline
        self.started_jobs = 0
        self.within = 0
        self.wait_sum = 0.0
        self.sojourn_sum = 0.0
        self.first_miss = math.inf
        self._hist = np.zeros(_BINS, dtype=np.int64)
        self._batch: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._batch_jobs = 0
        self._late = np.zeros(0, dtype=np.int64)  # late jobs per second of arrival + D

    def started(self, arrivals: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self._batch.append((arrivals, starts, ends))
        self._batch_jobs += arrivals.size
        if self._batch_jobs >= _BATCH_JOBS:
            self._count_batch()

    def _count_batch(self) -> None:
        if not self._batch:
            return
        arrivals, starts, ends = (np.concatenate(parts) for parts in zip(*self._batch, strict=True))
        self._batch, self._batch_jobs = [], 0
        sojourn = ends - arrivals
        late = sojourn > self.deadline
        self.jobs += sojourn.size
        self.started_jobs += sojourn.size
        self.within += sojourn.size - int(np.count_nonzero(late))
        self.wait_sum += float((starts - arrivals).sum())
        self.sojourn_sum += float(sojourn.sum())
        if late.any():
            self._count_late(arrivals[late])
        index = np.log(np.maximum(sojourn, _BIN_MIN) / _BIN_MIN) / math.log(_BIN_BASE)
        self._hist += np.bincount(index.astype(np.int64), minlength=_BINS)[:_BINS]

    def waiting(self, oldest_arrival: float | None, now: float) -> None:
        """Note a miss as soon as the oldest waiting job passes its deadline."""
        if oldest_arrival is not None and oldest_arrival + self.deadline < now:
            self.first_miss = min(self.first_miss, oldest_arrival + self.deadline)

    def unfinished(self, arrivals: np.ndarray, now: float) -> None:
        """Count the jobs still waiting at the end; call once, before reading the figures."""
        self._count_batch()
        late = arrivals + self.deadline < now
        self.jobs += int(np.count_nonzero(late))
        if late.any():
            self._count_late(arrivals[late])

    def _count_late(self, arrivals: np.ndarray) -> None:
        passed = arrivals + self.deadline
        self.first_miss = min(self.first_miss, float(passed.min()))
        counts = np.bincount(np.floor(passed).astype(np.int64))
        if counts.size > self._late.size:
            self._late = np.pad(self._late, (0, counts.size - self._late.size))
        self._late[: counts.size] += counts

    def misses(self) -> Misses:
        """The late jobs counted so far, by the second they passed their deadline."""
        seconds = np.flatnonzero(self._late)
        return Misses(seconds.astype(float), self._late[seconds])

    def percentile(self, share: float) -> float:
        counts = np.cumsum(self._hist)
        if counts[-1] == 0:
            return 0.0
        # unfinished late jobs are in `jobs` but not in the histogram: infinitely late
        rank = share * self.jobs
        if rank > counts[-1]:
            return math.inf
        index = int(np.searchsorted(counts, rank, side="left"))
        return _BIN_MIN * _BIN_BASE ** (index + 1)


class Completions:
    """The exporter's completion counter and duration histogram, as a scrape reads them:
    jobs are handed over when they start and counted once a scrape comes after their end."""

    def __init__(self) -> None:
        self.count = 0.0
        self.work = 0.0  # the processing seconds of the counted jobs
        # cumulative bucket counts, one per DURATION_BUCKETS bound (the +Inf bucket is `count`)
        self.buckets = np.zeros(len(DURATION_BUCKETS))
        self._ends: list[np.ndarray] = []
        self._services: list[np.ndarray] = []

    def started(self, ends: np.ndarray, services: np.ndarray) -> None:
        self._ends.append(ends)
        self._services.append(services)

    def count_until(self, now: float) -> None:
        """Count every job that ended before `now`."""
        if not self._ends:
            return
        ends, services = np.concatenate(self._ends), np.concatenate(self._services)
        done = ends < now
        self.count += int(np.count_nonzero(done))
        finished = services[done]
        self.work += float(finished.sum())
        per_bucket = np.bincount(np.searchsorted(_BOUNDS, finished), minlength=_BOUNDS.size + 1)
        self.buckets += np.cumsum(per_bucket[:-1])
        running = ~done
        self._ends, self._services = [ends[running]], [services[running]]


@dataclass(frozen=True)
class Misses:
    """Late jobs by the whole second (of the run) in which each passed its deadline."""

    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class Trace:
    """Series for the plots, one point per scrape."""

    times: list[float] = field(default_factory=list)
    arrival_rate: list[float] = field(default_factory=list)
    depth: list[float] = field(default_factory=list)
    dynos: list[float] = field(default_factory=list)
    billed: list[float] = field(default_factory=list)  # booting, serving and draining dynos


@dataclass
class RunResult:
    scenario: str
    policy: str
    jobs: int
    within_share: float
    p99: float
    mean_wait: float
    dyno_seconds: float
    actions: int
    direction_changes: int
    first_miss: float
    first_flag: float  # when the first page reached people (inf: never)
    trace: Trace
    pages: tuple[tuple[float, float], ...] = ()  # (notified, resolved) of each page
    misses: Misses = field(default_factory=Misses)
    busy_stopped: int = 0  # jobs running on dynos when they were stopped
    cut: int = 0  # of those, jobs past Heroku's 30 s SIGTERM grace (cut on Heroku)
    size_changes: tuple[tuple[float, str], ...] = ()  # (time, new size) of each
    boots: int = 0  # dynos started, each size change restarting every dyno

    @property
    def late(self) -> int:
        """Jobs that passed their deadline."""
        return int(self.misses.counts.sum())

    @property
    def flag_lead(self) -> float | None:
        """Seconds from the unmeetable flag to the first miss (positive: flagged in time)."""
        if math.isinf(self.first_flag) or math.isinf(self.first_miss):
            return None
        return self.first_miss - self.first_flag
