"""A plain Redis list used as a queue: its length.

In-progress and completed counts come from the job timing hash when workers
use exporter.timing (see timing_reader.py); a plain list has no timestamps, so
no oldest-job age.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.metrics import Sample


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    return [("LLEN", queue.name) for queue in queues]


def parse(queues: Sequence[Queue], replies: list[Any], now: float) -> list[Sample]:
    return [
        Sample("dynoscaler_queue_depth", queue.labels, length)
        for queue, length in zip(queues, replies, strict=True)
    ]
