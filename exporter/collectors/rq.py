"""RQ queues: `rq:queue:NAME` lists, the started and scheduled registries.

One Lua script per queue reads everything at once (one consistent view):

- depth: the list's length (RQ's `len(queue)`), plus the jobs of the scheduled
  registry `rq:scheduled:NAME` that are due (score <= now) and whose job hash
  still exists. RQ's scheduler runs inside workers started `--with-scheduler`,
  so with no such worker (a role at zero dynos) due jobs would never reach the
  queue; they are waiting work, aged from their due time.
- in progress: the live entries of the started registry `rq:wip:NAME`, whose
  score is the time the entry expires: an entry past it belongs to a worker
  that died mid-job (RQ treats it as abandoned and its cleanup moves the job to
  the failed registry), so it is not counted (what `len(StartedJobRegistry)`
  says after its cleanup).
- oldest age: RQ RPUSHes job ids, and LPUSHes the ones enqueued with
  `at_front=True`, so from the head the enqueue times fall through the at-front
  jobs to the oldest and then rise. The script walks from the head until the
  time rises (two job hashes for a queue without at-front jobs), skipping ids
  whose `rq:job:<id>` hash is gone (expired; RQ's worker skips them too), at
  most _READ_AT_MOST ids, as BullMQ's walk: behind more at-front jobs than
  that, the age is the oldest of those read (a lower bound; the depth, over
  1,000, says the rest). `enqueued_at` is ISO UTC ("%Y-%m-%dT%H:%M:%S.%fZ", or
  without fraction from old RQ versions); such strings order as their times.

No completed counter: RQ's finished and failed registries only keep jobs for
their result TTL (500 s by default), so their sizes are a moving window, not a
count. Workers that use exporter.timing report completed jobs as the duration
histogram's _count. An RQ_KEY_PREFIX other than `rq` is the queue's `prefix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import Shared, oldest_age
from exporter.metrics import Sample

# A hash read per id: 10,000 at-front jobs cost 119 ms a read, 1,000 3.4 ms
# (dynoscaler bench backends, rq at_front).
_READ_AT_MOST = 1000

# KEYS: the queue list, the started registry, the scheduled registry.
# ARGV: now, the job key prefix. Returns {length, live started, oldest
# enqueued_at or false, due scheduled jobs, earliest due score or false}.
_QUEUE = f"""
local length = redis.call('LLEN', KEYS[1])
local started = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
local due, first_due = 0, false
local scheduled = redis.call('ZRANGEBYSCORE', KEYS[3], 0, ARGV[1], 'WITHSCORES')
for i = 1, #scheduled, 2 do
  if redis.call('EXISTS', ARGV[2] .. scheduled[i]) == 1 then
    due = due + 1
    first_due = first_due or scheduled[i + 1]
  end
end
local oldest, read = false, 0
while read < math.min(length, {_READ_AT_MOST}) do
  local ids = redis.call('LRANGE', KEYS[1], read, read + 99)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local at = redis.pcall('HGET', ARGV[2] .. id, 'enqueued_at')
    if type(at) == 'string' and at ~= '' then
      if not oldest or at < oldest then
        oldest = at
      elseif at > oldest then
        return {{length, started, oldest, due, first_due}}
      end
    end
  end
  read = read + #ids
end
return {{length, started, oldest, due, first_due}}
"""

_TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    return []


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    return Shared()


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    prefix = "rq" if queue.prefix is None else queue.prefix  # RQ_KEY_PREFIX
    keys = [f"{prefix}:{kind}:{queue.name}" for kind in ("queue", "wip", "scheduled")]
    return [("EVAL", _QUEUE, len(keys), *keys, now, f"{prefix}:job:")]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    ((length, started, enqueued_at, due, first_due),) = replies
    depth = int(length) + int(due)
    due_for = None if first_due is None else max(0.0, now - float(first_due))
    return [
        Sample("dynoscaler_queue_depth", queue.labels, depth),
        Sample("dynoscaler_queue_in_progress", queue.labels, int(started)),
        *oldest_age(queue, depth, age(enqueued_at, now), due_for),
    ]


def age(enqueued_at: bytes | None, now: float) -> float | None:
    """Seconds since an RQ job's `enqueued_at`; None when there is none or it is unreadable."""
    if enqueued_at is None:
        return None
    text = enqueued_at.decode(errors="replace")
    for layout in _TIMESTAMP_FORMATS:
        try:
            when = datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        return max(0.0, now - when.timestamp())
    return None
