"""Celery queues on Redis (kombu's Redis transport): list lengths.

kombu LPUSHes each message onto the list named after the queue, or onto
`NAME\\x06\\x16<step>` for priorities 3, 6 and 9, so the depth is the sum of the
four lists (each key after kombu's `global_keyprefix`, the queue's `prefix`,
when set). Celery's message (protocol 2) carries no send time, so there is no
oldest-job age; and messages taken by a worker are only tracked in kombu's
server-wide `unacked` hash, which also holds prefetched ones, so no in-progress
count either. (Celery on RabbitMQ is read through the management API: see
rabbitmq.py.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import Shared
from exporter.metrics import Sample

# kombu.transport.redis: Channel.sep and PRIORITY_STEPS (0 uses the bare name).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    return []


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    return Shared()


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    prefix = queue.prefix or ""  # kombu's global_keyprefix transport option
    return [("LLEN", prefix + queue.name + suffix) for suffix in _PRIORITY_SUFFIXES]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    return [Sample("dynoscaler_queue_depth", queue.labels, sum(replies))]
