"""What the Sidekiq and Resque modules share: server-wide counters and busy workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.metrics import Sample

# Opens a busy-workers script: count(entry) tallies one JSON job entry under its queue.
_LUA_COUNT = """
local counts = {}
local function count(entry)
  local ok, work = pcall(cjson.decode, entry)
  if ok and type(work) == 'table' and work.queue then
    counts[work.queue] = (counts[work.queue] or 0) + 1
  end
end
"""

# Ends it: returns `counts` (queue -> jobs) as a flat list.
_LUA_RETURN_COUNTS = """
local flat = {}
for queue, jobs in pairs(counts) do
  flat[#flat + 1] = queue
  flat[#flat + 1] = jobs
end
return flat
"""


def busy_workers_script(loop: str) -> str:
    """A Lua script counting jobs in progress per queue; `loop` calls count(entry) per job."""
    return _LUA_COUNT + loop + _LUA_RETURN_COUNTS


def worker_commands(processed_key: str, busy_script: str) -> list[tuple[Any, ...]]:
    """The last commands of a read: the server's processed counter, then the busy workers."""
    return [("GET", processed_key), ("EVAL", busy_script, 0)]


def worker_samples(queues: Sequence[Queue], replies: list[Any]) -> list[Sample]:
    """Jobs in progress and completed, from the replies to worker_commands (the last two)."""
    processed, busy = replies[-2], replies[-1]
    return in_progress(queues, per_queue_counts(busy)) + server_completed(queues, processed)


def per_queue_counts(flat: list[Any]) -> dict[str, int]:
    """[queue, count, queue, count, ...] from a Lua script as {queue: count}."""
    names = [name.decode() if isinstance(name, bytes) else name for name in flat[::2]]
    return dict(zip(names, map(int, flat[1::2]), strict=True))


def oldest_age(queue: Queue, depth: int, age: float | None) -> list[Sample]:
    """The oldest job's age: 0 for an empty queue, nothing when its time is unreadable."""
    if depth == 0:
        age = 0.0
    return [] if age is None else [Sample("dynoscaler_queue_oldest_age_seconds", queue.labels, age)]


def in_progress(queues: Sequence[Queue], busy: dict[str, int]) -> list[Sample]:
    return [Sample("dynoscaler_queue_in_progress", q.labels, busy.get(q.name, 0)) for q in queues]


def server_completed(queues: Sequence[Queue], processed: bytes | None) -> list[Sample]:
    """The server-wide processed counter, published only when one app/role owns the server.

    Sidekiq and Resque count processed jobs per server, not per queue, so the
    count carries an empty queue label, and is left out when several roles
    share the server: it could not be split between them honestly.
    """
    owners = {(q.app, q.role) for q in queues}
    if len(owners) != 1:
        return []
    (app, role), backend = owners.pop(), queues[0].backend
    return [Sample("dynoscaler_jobs_completed", (app, role, "", backend), int(processed or 0))]
