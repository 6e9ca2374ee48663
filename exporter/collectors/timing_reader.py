"""Job timing hashes written by exporter.timing, read beside the queues they time.

Every queue on a Redis server gets one HGETALL of `dynoscaler:timing:<queue>`;
a missing hash (no worker uses the helper) gives no series. For a plain
redis_list queue, whose backend keeps no counts, the hash's in-progress and
completed counts stand in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.metrics import HistogramSample, Sample
from exporter.timing import BUCKET_FIELDS, COUNT_FIELD, IN_PROGRESS_FIELD, SUM_FIELD, timing_key


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    return [("HGETALL", timing_key(queue.name)) for queue in queues]


def parse(
    queues: Sequence[Queue], replies: list[Any], now: float
) -> list[Sample | HistogramSample]:
    samples: list[Sample | HistogramSample] = []
    for queue, fields in zip(queues, replies, strict=True):
        if fields:
            samples += _samples(queue, {k.decode(): float(v) for k, v in fields.items()})
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
