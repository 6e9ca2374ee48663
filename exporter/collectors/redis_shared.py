"""What the Redis-based backends share: the parsed server-wide reads, busy workers, counters.

Lua scripts here never fail on one bad entry or key: a busy entry that is not a
job naming its queue (garbage JSON, `{"queue": {"a": 1}}`) and a per-worker key
of the wrong type are skipped and returned as (key, problem, count) triples,
which become ReadErrors (logged and counted, no series left out: they are no
job of any queue the exporter can name).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.collectors import Queue, ReadError
from exporter.metrics import HistogramSample, Sample

# Opens a script: count(entry, key) tallies one JSON busy entry under its queue
# (and the earliest numeric run_at, when the job started: Sidekiq's), values(reply,
# key) is a redis.pcall reply's values ({} when the key is of the wrong type),
# skip(key, problem) notes an entry or key that was left out.
LUA_HELPERS = """
local counts, bad, started = {}, {}, {}
local function skip(key, problem)
  local name = key .. '\\0' .. problem
  bad[name] = (bad[name] or 0) + 1
end
local function count(entry, key)
  local ok, work = pcall(cjson.decode, entry)
  if ok and type(work) == 'table' and type(work.queue) == 'string' then
    counts[work.queue] = (counts[work.queue] or 0) + 1
    if type(work.run_at) == 'number' and work.run_at < (started[work.queue] or math.huge) then
      started[work.queue] = work.run_at
    end
  else
    skip(key, 'entries that are no job naming its queue')
  end
end
local function values(reply, key)
  if type(reply) == 'table' and reply.err then
    skip(key, 'not readable: ' .. reply.err)
    return {}
  end
  return reply
end
local function flat(map)
  local list = {}
  for name, value in pairs(map) do
    list[#list + 1] = name
    list[#list + 1] = value
  end
  return list
end
"""

# Ends a busy-workers script: {queue, count, ...}, {key\0problem, count, ...} and
# {queue, earliest run_at as text, ...} (Redis would cut a Lua number to an integer).
_LUA_RETURN_COUNTS = """
for name, at in pairs(started) do started[name] = string.format('%.17g', at) end
return {flat(counts), flat(bad), flat(started)}
"""


@dataclass
class Shared:
    """A backend's server-wide reads for its queues on one Redis, parsed."""

    samples: list[Sample | HistogramSample] = field(default_factory=list)
    errors: list[ReadError] = field(default_factory=list)
    busy: dict[str, int] = field(default_factory=dict)  # jobs in progress per queue name
    # the earliest start (run_at, as the backend wrote it) of a job in progress per queue
    busy_since: dict[str, float] = field(default_factory=dict)
    # due scheduled jobs per queue name: (count, earliest due time in epoch seconds)
    due: dict[str, tuple[int, float]] = field(default_factory=dict)


def busy_workers_script(loop: str) -> str:
    """A Lua script counting jobs in progress per queue; `loop` calls count(entry, key) per job."""
    return LUA_HELPERS + loop + _LUA_RETURN_COUNTS


def worker_commands(processed_key: str, busy_script: str) -> list[tuple[Any, ...]]:
    """Server-wide reads: the processed counter, then the busy workers."""
    return [("GET", processed_key), ("EVAL", busy_script, 0)]


def worker_shared(queues: Sequence[Queue], replies: list[Any]) -> Shared:
    """The replies to worker_commands: completed (server-wide) and busy counts per queue."""
    processed, (busy, bad, started) = replies[0], replies[1]
    since = per_queue_counts(started, float)
    return Shared(
        samples=list(server_completed(queues, processed)),
        errors=skipped(queues[0].backend, bad),
        busy=per_queue_counts(busy),
        busy_since={name: at for name, at in since.items() if math.isfinite(at)},
    )


def skipped(backend: str, flat: list[Any]) -> list[ReadError]:
    """ReadErrors from a script's {key\\0problem, count, ...} list (nothing left out)."""
    errors = []
    for name, count in zip(flat[::2], flat[1::2], strict=True):
        key, problem = _text(name).split("\0", 1)
        errors.append(ReadError(backend, f"{key}: {problem}, skipped", count=int(count)))
    return sorted(errors, key=lambda error: error.message)


def per_queue_counts(flat: list[Any], kind: type = int) -> dict[str, Any]:
    """[queue, count, queue, count, ...] from a Lua script as {queue: count}."""
    names = [_text(name) for name in flat[::2]]
    return dict(zip(names, (kind(_text(v)) for v in flat[1::2]), strict=True))


def oldest_age(queue: Queue, depth: int, *ages: float | None) -> list[Sample]:
    """The oldest waiting job's age (the largest of `ages` that are known).

    0 for an empty queue; nothing when no waiting job's time is readable.
    """
    known = [age for age in ages if age is not None]
    if depth == 0:
        known = [0.0]
    if not known:
        return []
    return [Sample("dynoscaler_queue_oldest_age_seconds", queue.labels, max(known))]


def due_age(queue: Queue, shared: Shared, now: float) -> tuple[int, float | None]:
    """Due scheduled jobs of the queue: their count and the earliest one's time past due."""
    count, earliest = shared.due.get(queue.name, (0, None))
    return count, (None if earliest is None else max(0.0, now - earliest))


def in_progress(queue: Queue, busy: dict[str, int]) -> Sample:
    return Sample("dynoscaler_queue_in_progress", queue.labels, busy.get(queue.name, 0))


def server_completed(queues: Sequence[Queue], processed: bytes | None) -> list[Sample]:
    """The server-wide processed counter, published only when one app/role owns the server.

    Sidekiq and Resque count processed jobs per server, not per queue, so the
    count carries an empty queue label, and is left out when several roles
    share the server: it could not be split between them honestly.
    """
    return server_wide("dynoscaler_jobs_completed", queues, int(processed or 0))


def server_wide(metric: str, queues: Sequence[Queue], value: int) -> list[Sample]:
    """A server-wide figure (empty queue label), only when one app/role owns the server."""
    owners = {(q.app, q.role) for q in queues}
    if len(owners) != 1:
        return []
    (app, role), backend = owners.pop(), queues[0].backend
    return [Sample(metric, (app, role, "", backend), value)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
