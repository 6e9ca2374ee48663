"""Worker-side job timing: record each job's processing time into Redis.

Use it around each job, as a context manager or a decorator:

    from exporter.timing import JobTimer
    timer = JobTimer(redis.Redis.from_url(os.environ["REDIS_URL"]), queue="default")

    with timer:
        process(job)

    @timer
    def process(job): ...

    with timer.job(enqueued_at=payload["enqueued_at"]):  # also the enqueue-to-done time
        process(job)

It keeps one hash per queue, `dynoscaler:timing:<queue>`, next to the queue on
the same Redis: one field per histogram bucket (counts, not cumulative), the
sum of durations, the count of finished jobs, and the jobs in progress. Each
job costs two round trips: HINCRBY in_progress at the start, and one MULTI
with the bucket, sum, count and in_progress updates at the end, so the hash is
always consistent. The exporter reads it in its per-Redis pipeline and
publishes dynoscaler_job_duration_seconds.

A job timed with `timer.job(enqueued_at)` (epoch seconds or a datetime, naive
meaning UTC) also counts its time from enqueue to done into `total:le:<bound>`
fields on TOTAL_BOUNDS, a grid finer than the duration buckets (every whole
second up to 10 minutes, every whole minute up to a day), and `total:sum`. The
worker does not know the role's deadline; the exporter does, and folds the grid
into dynoscaler_job_total_seconds with the deadline as one of its bounds, so the
share of jobs within it is exact for a deadline on the grid
(exporter/timing_rq.py and timing_dramatiq.py read the enqueue time RQ and
Dramatiq jobs carry; timing_celery.py stamps Celery's at publish).

A failure to record is logged and never fails the job; give the timer a client
with short time-outs and no retries, so a dead Redis costs a job little time:
redis.Redis.from_url(url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)). A worker killed in the
middle of a job leaves in_progress one too high until the hash is deleted.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import redis

from exporter.metrics import DURATION_BUCKETS, bucket_index

KEY_PREFIX = "dynoscaler:timing:"
BUCKET_FIELDS: tuple[str, ...] = (*(f"le:{bound}" for bound in DURATION_BUCKETS), "le:+Inf")
SUM_FIELD = "sum"
COUNT_FIELD = "count"
IN_PROGRESS_FIELD = "in_progress"
TOTAL_BOUNDS: tuple[float, ...] = tuple(
    sorted({*DURATION_BUCKETS, *range(1, 601), *range(660, 86_401, 60)})
)
TOTAL_PREFIX = "total:le:"
TOTAL_INF_FIELD = f"{TOTAL_PREFIX}+Inf"
TOTAL_SUM_FIELD = "total:sum"
# One field per TOTAL_BOUNDS bound, then +Inf (exporter.web counts requests on them too).
TOTAL_FIELDS: tuple[str, ...] = (
    *(f"{TOTAL_PREFIX}{bound:g}" for bound in TOTAL_BOUNDS),
    TOTAL_INF_FIELD,
)

_log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def timing_key(queue: str) -> str:
    return f"{KEY_PREFIX}{queue}"


def total_field(seconds: float) -> str:
    """The hash field counting an enqueue-to-done time: its TOTAL_BOUNDS bucket."""
    return TOTAL_FIELDS[bisect.bisect_left(TOTAL_BOUNDS, seconds)]


def epoch_seconds(moment: float | datetime) -> float:
    """Epoch seconds of a time given as epoch seconds or a datetime (naive is UTC, as RQ's)."""
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float(moment)


class JobTimer:
    """Times jobs of one queue; reusable, and safe to share between threads."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.client = client
        self.key = timing_key(queue)
        self._local = threading.local()

    def __enter__(self) -> JobTimer:
        self.begin()
        return self

    @contextlib.contextmanager
    def job(self, enqueued_at: float | datetime | None) -> Iterator[JobTimer]:
        """Time one job, and its time from `enqueued_at` to done when given."""
        self.begin(enqueued_at)
        try:
            yield self
        finally:
            self.end()

    def begin(self, enqueued_at: float | datetime | None = None) -> None:
        """A job starts in this thread (for libraries whose hooks start and end a job apart:
        exporter.timing_dramatiq); `end()` finishes the latest one begun."""
        counted = self._record(lambda pipe: pipe.hincrby(self.key, IN_PROGRESS_FIELD, 1))
        enqueued = None if enqueued_at is None else epoch_seconds(enqueued_at)
        self._starts().append((time.perf_counter(), counted, enqueued))

    def end(self) -> None:
        started, counted, enqueued_at = self._starts().pop()
        total = None if enqueued_at is None else time.time() - enqueued_at
        self.record(time.perf_counter() - started, finished=counted, total=total)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.end()

    def __call__(self, function: F) -> F:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return timed  # type: ignore[return-value]

    def record(self, seconds: float, finished: bool = False, total: float | None = None) -> None:
        """Add one job that took `seconds` (and `total` from enqueue to done, when known);
        `finished` also ends one counted as in progress."""

        def update(pipe: redis.client.Pipeline) -> None:
            pipe.hincrby(self.key, BUCKET_FIELDS[bucket_index(seconds)], 1)
            pipe.hincrbyfloat(self.key, SUM_FIELD, seconds)
            pipe.hincrby(self.key, COUNT_FIELD, 1)
            if total is not None:  # below 0 when the worker's clock is behind the enqueuer's
                pipe.hincrby(self.key, total_field(max(0.0, total)), 1)
                pipe.hincrbyfloat(self.key, TOTAL_SUM_FIELD, max(0.0, total))
            if finished:
                pipe.hincrby(self.key, IN_PROGRESS_FIELD, -1)

        self._record(update)

    def _starts(self) -> list[tuple[float, bool, float | None]]:
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
