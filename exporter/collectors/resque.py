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
    Shared,
    busy_workers_script,
    in_progress,
    worker_commands,
    worker_shared,
)
from exporter.metrics import Sample

_WORKING_BY_QUEUE = busy_workers_script(
    """
for _, worker in ipairs(redis.call('SMEMBERS', 'resque:workers')) do
  local key = 'resque:worker:' .. worker
  local entry = redis.pcall('GET', key)
  if type(entry) == 'table' and entry.err then
    skip(key, 'not readable: ' .. entry.err)
  elseif entry then
    count(entry, key)
  end
end
"""
)


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    return worker_commands("resque:stat:processed", _WORKING_BY_QUEUE)


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    return worker_shared(queues, replies)


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    return [("LLEN", f"resque:queue:{queue.name}")]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    (length,) = replies
    return [Sample("dynoscaler_queue_depth", queue.labels, length), in_progress(queue, shared.busy)]
