"""Resque queues: `resque:queue:NAME` lists, working workers, the processed counter.

Resque jobs carry no enqueue time, so there is no oldest-job age. A working
worker's `resque:worker:<id>` key holds JSON naming the queue of its job, so
jobs in progress are counted per queue in one Lua script over `resque:workers`.
`resque:stat:processed` is server-wide (see redis_shared.server_completed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import (
    busy_workers_script,
    worker_commands,
    worker_samples,
)
from exporter.metrics import Sample

_WORKING_BY_QUEUE = busy_workers_script(
    """
for _, worker in ipairs(redis.call('SMEMBERS', 'resque:workers')) do
  local entry = redis.call('GET', 'resque:worker:' .. worker)
  if entry then
    count(entry)
  end
end
"""
)


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    lengths = [("LLEN", f"resque:queue:{queue.name}") for queue in queues]
    return [*lengths, *worker_commands("resque:stat:processed", _WORKING_BY_QUEUE)]


def parse(queues: Sequence[Queue], replies: list[Any], now: float) -> list[Sample]:
    samples = [
        Sample("dynoscaler_queue_depth", queue.labels, length)
        for queue, length in zip(queues, replies, strict=False)
    ]
    return samples + worker_samples(queues, replies)
