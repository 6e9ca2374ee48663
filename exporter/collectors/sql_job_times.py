"""Enqueue-to-done times of the finished jobs the SQL libraries keep, read from the database.

Solid Queue keeps a finished job's `solid_queue_jobs` row (with `finished_at`)
until `clear_finished_jobs_after` (1 day by default) unless
`preserve_finished_jobs` is false; GoodJob keeps its `good_jobs` row unless
`preserve_job_records` is false. Delayed Job and Que delete a finished job's
row: nothing is left to read (docs/exporter.md says what a team can do instead).

A job's enqueue time is the later of its `created_at` and `scheduled_at` (a job
scheduled for later is enqueued when it is due; a GoodJob retry, which GoodJob
re-enqueues in the same row with a later `scheduled_at`, counts from that due
time, as a Sidekiq retry counts from its new `enqueued_at`); it is done at
`finished_at` (GoodJob: succeeded or discarded; rows of an older GoodJob's retries,
`retried_good_job_id` set, are left out as GoodJob's own finished index leaves them),
or for Solid Queue's failed jobs at their failed execution's `created_at`.

Each read counts the jobs done in the window the SQL source reads its completions
in (after the end of the last counted window, up to FINISHED_LAG seconds ago, so a
row committed up to that late is counted, once), bucketed in SQL onto exporter.timing's
TOTAL_BOUNDS grid, one row per queue and bucket. The counts add up from the exporter's
start, as the timing hashes' do, and fold (timing_reader.total_samples) into
dynoscaler_job_total_seconds with the role's deadline as a bound and
dynoscaler_jobs_within_deadline_total. An exporter restart starts the counts at 0 (a
counter reset for rate()) and its first window at its first read: the jobs done between
the last read of the old process and that first read are not counted.
A failed read keeps its window start, so the next read counts what this one missed.

Indexes used: Solid Queue's `index_solid_queue_jobs_for_filtering` (queue_name,
finished_at); GoodJob's `index_good_jobs_jobs_on_finished_at` (finished_at) WHERE
retried_good_job_id IS NULL AND finished_at IS NOT NULL.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.sql import Dialect
from exporter.collectors.timing_reader import total_samples
from exporter.metrics import HistogramSample, Sample
from exporter.timing import TOTAL_BOUNDS

# The runs of TOTAL_BOUNDS that are every multiple of a step: one CASE branch each.
_STEPS = (1, 60)


def grid_case(seconds: str) -> str:
    """SQL: the TOTAL_BOUNDS bound whose bucket holds `seconds` (the smallest bound at or
    above it), NULL past the last (+Inf): one branch per bound off the runs of whole
    seconds and whole minutes, one per run."""
    branches: list[str] = []
    run_step: int | None = None
    previous = 0.0
    for bound in TOTAL_BOUNDS:
        step = _run_step(bound, previous, run_step)
        if step is not None and step == run_step:
            branches[-1] = f"WHEN {seconds} <= {bound:g} THEN ceil({seconds} / {step}) * {step}"
        elif step is not None:
            branches.append(f"WHEN {seconds} <= {bound:g} THEN ceil({seconds} / {step}) * {step}")
        else:
            branches.append(f"WHEN {seconds} <= {bound:g} THEN {bound:g}")
        run_step, previous = step, bound
    return f"CASE {' '.join(branches)} ELSE NULL END"


def _run_step(bound: float, previous: float, current: int | None) -> int | None:
    """The step of a run `bound` can belong to (the current run's first): it is a multiple of
    the step and the bound before it is within one step, so ceil(t / step) * step is `bound`
    for every t of its bucket."""
    steps = sorted(_STEPS, key=lambda step: step != current)
    return next(
        (step for step in steps if bound % step == 0 and previous >= bound - step),
        None,
    )


def statement(dialect: Dialect, backend: str) -> str:
    """One SELECT for all the configured queues of `backend` in one database, with the
    parameters `names`, `since` and `until`: rows (queue, bound or NULL for +Inf, jobs,
    sum of their enqueue-to-done seconds)."""
    since, until, names = dialect.time("since"), dialect.time("until"), dialect.names
    window = f"> {since} AND {{0}} <= {until}"
    parts = {
        "solid_queue": [
            _seconds(dialect, "queue_name", "finished_at", "created_at", "scheduled_at")
            + f" FROM solid_queue_jobs WHERE finished_at {window.format('finished_at')} "
            f"AND queue_name {names}",
            _seconds(dialect, "j.queue_name", "f.created_at", "j.created_at", "j.scheduled_at")
            + " FROM solid_queue_failed_executions f JOIN solid_queue_jobs j ON j.id = f.job_id "
            f"WHERE f.created_at {window.format('f.created_at')} AND j.queue_name {names}",
        ],
        "good_job": [
            _seconds(dialect, "queue_name", "finished_at", "created_at", "scheduled_at")
            + f" FROM good_jobs WHERE finished_at {window.format('finished_at')} "
            f"AND retried_good_job_id IS NULL AND finished_at IS NOT NULL AND queue_name {names}",
        ],
    }[backend]
    body = "\n  UNION ALL\n  ".join(parts)
    return (
        f"SELECT queue, {grid_case('seconds')}, count(*), sum(GREATEST(seconds, 0))\n"
        f"FROM (\n  {body}\n) AS done\nGROUP BY 1, 2"
    )


def _seconds(dialect: Dialect, queue: str, done: str, created: str, scheduled: str) -> str:
    enqueued = f"GREATEST({created}, COALESCE({scheduled}, {created}))"
    return f"SELECT {queue} AS queue, {dialect.epoch(done)} - {dialect.epoch(enqueued)} AS seconds"


BACKENDS = ("solid_queue", "good_job")


class JobTimes:
    """The enqueue-to-done counts of one database's queues of the BACKENDS, from the start."""

    def __init__(self) -> None:
        # per backend: the end of the last window counted
        self.counted_until: dict[str, float] = {}
        self.grids: dict[tuple[str, ...], Counter[float]] = {}
        self.sums: Counter[tuple[str, ...]] = Counter()

    def window(self, backend: str, until: float) -> dict[str, float]:
        """The `since` and `until` parameters of the backend's next read."""
        return {"since": self.counted_until.get(backend, until), "until": until}

    def add(
        self, backend: str, queues: Sequence[Queue], rows: Iterable[tuple[Any, ...]], until: float
    ) -> list[Sample | HistogramSample]:
        """Count a read's rows (the window up to `until` done) and give the queues' series."""
        by_name = {queue.name: queue for queue in queues}
        for name, bound, jobs, seconds in rows:
            labels = by_name[str(name)].labels
            grid = self.grids.setdefault(labels, Counter())
            grid[_grid_bound(bound)] += int(jobs)
            if seconds is not None and math.isfinite(float(seconds)):
                self.sums[labels] += float(seconds)
        self.counted_until[backend] = until
        samples: list[Sample | HistogramSample] = []
        for queue in queues:
            grid = self.grids.setdefault(queue.labels, Counter())
            samples += total_samples(
                queue.labels[:3], queue.deadline, dict(grid), self.sums[queue.labels]
            )
        return samples


def _grid_bound(bound: Any) -> float:
    """The TOTAL_BOUNDS bound (inf for +Inf) of a bound the database computed."""
    if bound is None:
        return math.inf
    return TOTAL_BOUNDS[bisect.bisect_left(TOTAL_BOUNDS, round(float(bound), 6))]
