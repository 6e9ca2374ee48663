"""Celery queues on Redis (kombu's Redis transport): list lengths.

kombu LPUSHes each message onto the list named after the queue, or onto
`NAME\\x06\\x16<step>` for priorities 3, 6 and 9, so the depth is the sum of the
four lists. Celery's message (protocol 2) carries no send time, so there is no
oldest-job age; and messages taken by a worker are only tracked in kombu's
server-wide `unacked` hash, which also holds prefetched ones, so no in-progress
count either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.metrics import Sample

# kombu.transport.redis: Channel.sep and PRIORITY_STEPS (0 uses the bare name).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    return [("LLEN", queue.name + suffix) for queue in queues for suffix in _PRIORITY_SUFFIXES]


def parse(queues: Sequence[Queue], replies: list[Any], now: float) -> list[Sample]:
    steps = len(_PRIORITY_SUFFIXES)
    return [
        Sample("dynoscaler_queue_depth", queue.labels, sum(replies[i * steps : (i + 1) * steps]))
        for i, queue in enumerate(queues)
    ]
