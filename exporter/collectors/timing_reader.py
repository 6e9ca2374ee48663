"""Job timing hashes written by exporter.timing, read beside the queues they time.

One Lua script per Redis server returns the `dynoscaler:timing:<queue>` hashes
that exist, so queues whose workers do not use the helper cost no reply; a
missing hash gives no series. For a plain
redis_list queue, whose backend keeps no counts, the hash's in-progress and
completed counts stand in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.metrics import HistogramSample, Sample
from exporter.timing import BUCKET_FIELDS, COUNT_FIELD, IN_PROGRESS_FIELD, SUM_FIELD, timing_key

# Returns {index of the key, {field, value, ...}, ...} for the hashes that exist.
_EXISTING_HASHES = """
local found = {}
for index, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  if #fields > 0 then
    found[#found + 1] = index
    found[#found + 1] = fields
  end
end
return found
"""


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    keys = [timing_key(queue.name) for queue in queues]
    return [("EVAL", _EXISTING_HASHES, len(keys), *keys)]


def parse(
    queues: Sequence[Queue], replies: list[Any], now: float
) -> list[Sample | HistogramSample]:
    (found,) = replies
    samples: list[Sample | HistogramSample] = []
    for index, flat in zip(found[::2], found[1::2], strict=True):
        pairs = zip(flat[::2], flat[1::2], strict=True)
        fields = {name.decode(): float(value) for name, value in pairs}
        samples += _samples(queues[index - 1], fields)
    return samples


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
