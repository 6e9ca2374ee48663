"""Job timing hashes written by exporter.timing, read beside the queues they time.

One Lua script per Redis server returns the `dynoscaler:timing:<queue>` hashes
that exist, so queues whose workers do not use the helper cost no reply; a
missing hash gives no series, nor does one that is not a hash of numbers (a
logged and counted error that costs only that hash). For a plain
redis_list queue, whose backend keeps no counts, the hash's in-progress and
completed counts stand in.

The enqueue-to-done grid (`total:le:<bound>` fields, exporter.timing) folds into
dynoscaler_job_total_seconds on the duration buckets plus the role's deadline,
and dynoscaler_jobs_within_deadline_total counts the grid up to the deadline. A
deadline off the grid counts the jobs of the grid bucket across it as late.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue, ReadError
from exporter.collectors.redis_shared import Shared
from exporter.metrics import DURATION_BUCKETS, HistogramSample, Sample
from exporter.timing import (
    BUCKET_FIELDS,
    COUNT_FIELD,
    IN_PROGRESS_FIELD,
    SUM_FIELD,
    TOTAL_PREFIX,
    TOTAL_SUM_FIELD,
    timing_key,
)

# Returns {{index of the key, {field, value, ...}, ...}, {index, error, ...}}: the
# hashes that exist, and the keys that are not hashes (each costs only its hash).
_EXISTING_HASHES = """
local found, bad = {}, {}
for index, key in ipairs(KEYS) do
  local fields = redis.pcall('HGETALL', key)
  if fields.err then
    bad[#bad + 1] = index
    bad[#bad + 1] = fields.err
  elseif #fields > 0 then
    found[#found + 1] = index
    found[#found + 1] = fields
  end
end
return {found, bad}
"""


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    keys = [timing_key(queue.name) for queue in queues]
    return [("EVAL", _EXISTING_HASHES, len(keys), *keys)]


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    ((found, bad),) = replies
    shared = Shared()
    for index, error in zip(bad[::2], bad[1::2], strict=True):
        shared.errors.append(_unusable(queues[index - 1], str(error)))
    for index, flat in zip(found[::2], found[1::2], strict=True):
        queue = queues[index - 1]
        try:
            pairs = zip(flat[::2], flat[1::2], strict=True)
            fields = {name.decode(): float(value) for name, value in pairs}
            totals = total_grid(fields)
        except (ValueError, UnicodeDecodeError):
            shared.errors.append(_unusable(queue, "a field is not a number"))
            continue
        shared.samples += _samples(queue, fields)
        if totals:
            total_sum = fields.get(TOTAL_SUM_FIELD, 0.0)
            shared.samples += total_samples(queue.labels[:3], queue.deadline, totals, total_sum)
    return shared


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    return []


def parse_queue(
    queue: Queue, replies: list[Any], now: float, shared: Shared
) -> list[Sample | HistogramSample]:
    return []


def _unusable(queue: Queue, problem: str) -> ReadError:
    """A timing hash that cannot be read: its queue has no timing series, as without the helper."""
    return ReadError(queue.backend, f"{timing_key(queue.name)}: {problem}, skipped")


def _samples(queue: Queue, fields: dict[str, float]) -> list[Sample | HistogramSample]:
    counts = tuple(fields.get(field, 0.0) for field in BUCKET_FIELDS)
    samples: list[Sample | HistogramSample] = [
        HistogramSample(
            "dynoscaler_job_duration_seconds",
            queue.labels[:3],
            counts,
            fields.get(SUM_FIELD, 0.0),
        )
    ]
    if queue.backend == "redis_list":
        samples += [
            Sample("dynoscaler_queue_in_progress", queue.labels, fields.get(IN_PROGRESS_FIELD, 0)),
            Sample("dynoscaler_jobs_completed", queue.labels, fields.get(COUNT_FIELD, 0)),
        ]
    return samples


def total_grid(fields: dict[str, float]) -> dict[float, float]:
    """The enqueue-to-done grid's counts by upper bound (+Inf as inf), from a hash's fields
    (exporter.timing's, and exporter.web's response times)."""
    return {
        float(name.removeprefix(TOTAL_PREFIX)): count
        for name, count in fields.items()
        if name.startswith(TOTAL_PREFIX)
    }


def total_samples(
    labels: tuple[str, str, str],
    deadline: float | None,
    totals: dict[float, float],
    total_sum: float,
) -> list[Sample | HistogramSample]:
    """dynoscaler_job_total_seconds on the duration buckets plus the deadline, and the
    count within the deadline, for (app, role, queue)."""
    bounds = tuple(sorted({*DURATION_BUCKETS, *([] if deadline is None else [deadline])}))
    counts = [0.0] * (len(bounds) + 1)
    for bound, count in totals.items():
        counts[bisect.bisect_left(bounds, bound)] += count
    samples: list[Sample | HistogramSample] = [
        HistogramSample("dynoscaler_job_total_seconds", labels, tuple(counts), total_sum, bounds)
    ]
    if deadline is not None:
        within = sum(count for bound, count in totals.items() if bound <= deadline)
        samples.append(Sample("dynoscaler_jobs_within_deadline", labels, within))
    return samples
