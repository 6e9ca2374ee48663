"""Sidekiq queues: `queue:NAME` lists, busy workers, the processed counter.

Sidekiq's client LPUSHes a JSON job and its server takes jobs with BRPOP, so
the oldest waiting job is the list's tail. Its `enqueued_at` is epoch seconds
(a float) up to Sidekiq 7 and epoch milliseconds (an integer) from Sidekiq 8.

In progress: each live process (member of the `processes` set whose hash still
exists; Sidekiq expires it 60 s after the last heartbeat) keeps a
`<identity>:work` hash with one JSON entry per running job naming its queue,
so jobs in progress are counted per queue in one Lua script.
`stat:processed` is server-wide (see redis_shared.server_completed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import (
    busy_workers_script,
    oldest_age,
    worker_commands,
    worker_samples,
)
from exporter.metrics import Sample

_BUSY_BY_QUEUE = busy_workers_script(
    """
for _, identity in ipairs(redis.call('SMEMBERS', 'processes')) do
  if redis.call('EXISTS', identity) == 1 then
    for _, entry in ipairs(redis.call('HVALS', identity .. ':work')) do
      count(entry)
    end
  end
end
"""
)

# Sidekiq 8 writes milliseconds; no job was enqueued before 1973 in seconds either.
_MILLISECONDS_FROM = 1e11


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    per_queue = [
        command
        for queue in queues
        for command in (("LLEN", f"queue:{queue.name}"), ("LINDEX", f"queue:{queue.name}", -1))
    ]
    return [*per_queue, *worker_commands("stat:processed", _BUSY_BY_QUEUE)]


def parse(queues: Sequence[Queue], replies: list[Any], now: float) -> list[Sample]:
    samples = []
    for index, queue in enumerate(queues):
        length, oldest = replies[2 * index], replies[2 * index + 1]
        samples.append(Sample("dynoscaler_queue_depth", queue.labels, length))
        samples += oldest_age(queue, length, _age(oldest, now))
    return samples + worker_samples(queues, replies)


def _age(job: bytes | None, now: float) -> float | None:
    try:
        enqueued_at = float(json.loads(job)["enqueued_at"])
    except (TypeError, ValueError, KeyError):  # no job, or not a Sidekiq job
        return None
    if enqueued_at > _MILLISECONDS_FROM:
        enqueued_at /= 1000
    return max(0.0, now - enqueued_at)
