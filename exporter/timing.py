"""Worker-side job timing: record each job's processing time into Redis.

Use it around each job, as a context manager or a decorator:

    from exporter.timing import JobTimer
    timer = JobTimer(redis.Redis.from_url(os.environ["REDIS_URL"]), queue="default")

    with timer:
        process(job)

    @timer
    def process(job): ...

It keeps one hash per queue, `dynoscaler:timing:<queue>`, next to the queue on
the same Redis: one field per histogram bucket (counts, not cumulative), the
sum of durations, the count of finished jobs, and the jobs in progress. Each
job costs two round trips: HINCRBY in_progress at the start, and one MULTI
with the bucket, sum, count and in_progress updates at the end, so the hash is
always consistent. The exporter reads it in its per-Redis pipeline and
publishes dynoscaler_job_duration_seconds.

A failure to record is logged and never fails the job; give the timer a client
with short time-outs and no retries, so a dead Redis costs a job little time:
redis.Redis.from_url(url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)). A worker killed in the
middle of a job leaves in_progress one too high until the hash is deleted.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import redis

from exporter.metrics import DURATION_BUCKETS, bucket_index

KEY_PREFIX = "dynoscaler:timing:"
BUCKET_FIELDS: tuple[str, ...] = (*(f"le:{bound}" for bound in DURATION_BUCKETS), "le:+Inf")
SUM_FIELD = "sum"
COUNT_FIELD = "count"
IN_PROGRESS_FIELD = "in_progress"

_log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def timing_key(queue: str) -> str:
    return f"{KEY_PREFIX}{queue}"


class JobTimer:
    """Times jobs of one queue; reusable, and safe to share between threads."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.client = client
        self.key = timing_key(queue)
        self._local = threading.local()

    def __enter__(self) -> JobTimer:
        counted = self._record(lambda pipe: pipe.hincrby(self.key, IN_PROGRESS_FIELD, 1))
        self._starts().append((time.perf_counter(), counted))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        started, counted = self._starts().pop()
        self.record(time.perf_counter() - started, finished=counted)

    def __call__(self, function: F) -> F:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return timed  # type: ignore[return-value]

    def record(self, seconds: float, finished: bool = False) -> None:
        """Add one job that took `seconds`; `finished` also ends one counted as in progress."""

        def update(pipe: redis.client.Pipeline) -> None:
            pipe.hincrby(self.key, BUCKET_FIELDS[bucket_index(seconds)], 1)
            pipe.hincrbyfloat(self.key, SUM_FIELD, seconds)
            pipe.hincrby(self.key, COUNT_FIELD, 1)
            if finished:
                pipe.hincrby(self.key, IN_PROGRESS_FIELD, -1)

        self._record(update)

    def _starts(self) -> list[tuple[float, bool]]:
        # Per thread (and nested jobs), so one timer can time jobs in several threads.
        if not hasattr(self._local, "starts"):
            self._local.starts = []
        return self._local.starts

    def _record(self, update: Callable[[redis.client.Pipeline], object]) -> bool:
        try:
            with self.client.pipeline(transaction=True) as pipe:
                update(pipe)
                pipe.execute()
            return True
        except redis.RedisError as error:
            _log.warning("dynoscaler timing: cannot record to %s: %s", self.key, error)
            return False
