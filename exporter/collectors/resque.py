"""Resque queues: `resque:queue:NAME` lists, working workers, the processed counter.

Resque jobs carry no enqueue time, so there is no oldest-job age. A working
worker's `resque:worker:<id>` key holds JSON naming the queue of its job, so
jobs in progress are counted per queue in one Lua script over `resque:workers`.
`resque:stat:processed` is server-wide (see redis_shared.server_completed).
A namespace other than `resque` (`Resque.redis.namespace`) is the queue's
`prefix`; the processed counters of the namespaces read are added up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import (
    Shared,
    busy_workers_script,
    per_queue_counts,
    server_completed,
    skipped,
)
from exporter.metrics import Sample

# ARGV[1]: the namespace.
_WORKING_BY_QUEUE = busy_workers_script(
    """
for _, worker in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':workers')) do
  local key = ARGV[1] .. ':worker:' .. worker
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
    return [
        command
        for namespace in _namespaces(queues)
        for command in (
            ("GET", f"{namespace}:stat:processed"),
            ("EVAL", _WORKING_BY_QUEUE, 0, namespace),
        )
    ]


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    """Busy workers per namespace and queue; the processed counters of all namespaces added up."""
    shared, processed = Shared(), 0
    for index, namespace in enumerate(_namespaces(queues)):
        # Resque's run_at is a date text: no start times (the third list) to read.
        counter, (busy, bad, _) = replies[2 * index : 2 * index + 2]
        processed += int(counter or 0)
        shared.busy.update({f"{namespace}:{q}": n for q, n in per_queue_counts(busy).items()})
        shared.errors += skipped("resque", bad)
    shared.samples += server_completed(queues, str(processed).encode())
    return shared


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    return [("LLEN", f"{_namespace(queue)}:queue:{queue.name}")]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    (length,) = replies
    busy = shared.busy.get(f"{_namespace(queue)}:{queue.name}", 0)
    return [
        Sample("dynoscaler_queue_depth", queue.labels, length),
        Sample("dynoscaler_queue_in_progress", queue.labels, busy),
    ]


def _namespace(queue: Queue) -> str:
    return "resque" if queue.prefix is None else queue.prefix


def _namespaces(queues: Sequence[Queue]) -> list[str]:
    return sorted({_namespace(queue) for queue in queues})
