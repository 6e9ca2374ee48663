"""A plain Redis list used as a queue: its length.

In-progress and completed counts come from the job timing hash when workers
use exporter.timing (see timing_reader.py); a plain list has no timestamps, so
no oldest-job age.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import Shared
from exporter.metrics import Sample


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    return []


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    return Shared()


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    return [("LLEN", queue.name)]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    (length,) = replies
    return [Sample("dynoscaler_queue_depth", queue.labels, length)]
