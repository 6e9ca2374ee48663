"""exporter.timing for RQ: a Worker timing every job, with the enqueue time it carries.

`rq worker -w exporter.timing_rq.TimedWorker ...` records each job's processing
time and its time from `job.enqueued_at` (set by Queue.enqueue; naive UTC up to
rq 1.x) to done into a hash per queue on the worker's Redis, beside the queue.
"""

from __future__ import annotations

from typing import Any

import rq

from exporter.timing import JobTimer


class TimedWorker(rq.Worker):
    """An rq Worker recording each job's processing and enqueue-to-done time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timers: dict[str, JobTimer] = {}

    def perform_job(self, job: rq.job.Job, queue: rq.Queue, *args: Any, **kwargs: Any) -> bool:
        timer = self._timers.get(queue.name)
        if timer is None:
            timer = self._timers[queue.name] = JobTimer(self.connection, queue.name)
        with timer.job(enqueued_at=job.enqueued_at):
            return super().perform_job(job, queue, *args, **kwargs)
