"""RQ queues: `rq:queue:NAME` lists, the started-job registry, the oldest job's age.

RQ RPUSHes job ids and workers take them from the head, so the oldest waiting
job is the list's head; its `rq:job:<id>` hash holds `enqueued_at` in ISO form
(UTC, "%Y-%m-%dT%H:%M:%S.%fZ"), read in the same round trip by a Lua script.
Jobs in progress are the members of the started registry `rq:wip:NAME`.

No completed counter: RQ's finished and failed registries only keep jobs for
their result TTL (500 s by default), so their sizes are a moving window, not a
count. Workers that use exporter.timing report completed jobs as the duration
histogram's _count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import oldest_age
from exporter.metrics import Sample

_OLDEST_ENQUEUED_AT = """
local id = redis.call('LINDEX', KEYS[1], 0)
if not id then return false end
return redis.call('HGET', 'rq:job:' .. id, 'enqueued_at')
"""

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    return [
        command
        for queue in queues
        for command in (
            ("LLEN", f"rq:queue:{queue.name}"),
            ("ZCARD", f"rq:wip:{queue.name}"),
            ("EVAL", _OLDEST_ENQUEUED_AT, 1, f"rq:queue:{queue.name}"),
        )
    ]


def parse(queues: Sequence[Queue], replies: list[Any], now: float) -> list[Sample]:
    samples = []
    for index, queue in enumerate(queues):
        length, started, enqueued_at = replies[3 * index : 3 * index + 3]
        samples += [
            Sample("dynoscaler_queue_depth", queue.labels, length),
            Sample("dynoscaler_queue_in_progress", queue.labels, started),
            *oldest_age(queue, length, _age(enqueued_at, now)),
        ]
    return samples


def _age(enqueued_at: bytes | None, now: float) -> float | None:
    try:
        when = datetime.strptime(enqueued_at.decode(), _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except (AttributeError, ValueError):  # no job hash (expired) or no enqueue time
        return None
    return max(0.0, now - when.timestamp())
