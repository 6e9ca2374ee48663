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
    LUA_RETURN_COUNTS,
    in_progress,
    per_queue_counts,
    server_completed,
)
from exporter.metrics import Sample

_WORKING_BY_QUEUE = (
    """
local counts = {}
for _, worker in ipairs(redis.call('SMEMBERS', 'resque:workers')) do
  local entry = redis.call('GET', 'resque:worker:' .. worker)
  if entry then
    local ok, work = pcall(cjson.decode, entry)
    if ok and type(work) == 'table' and work.queue then
      counts[work.queue] = (counts[work.queue] or 0) + 1
    end
  end
end
"""
    + LUA_RETURN_COUNTS
)


def commands(queues: Sequence[Queue]) -> list[tuple[Any, ...]]:
    lengths = [("LLEN", f"resque:queue:{queue.name}") for queue in queues]
    return [*lengths, ("GET", "resque:stat:processed"), ("EVAL", _WORKING_BY_QUEUE, 0)]


def parse(queues: Sequence[Queue], replies: list[Any], now: float) -> list[Sample]:
    samples = [
        Sample("dynoscaler_queue_depth", queue.labels, length)
        for queue, length in zip(queues, replies, strict=False)
    ]
    processed, working = replies[-2], replies[-1]
    return (
        samples
        + in_progress(queues, per_queue_counts(working))
        + server_completed(queues, processed)
    )
