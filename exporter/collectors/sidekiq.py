"""Sidekiq queues: `queue:NAME` lists, due scheduled jobs and retries, busy workers.

Sidekiq's client LPUSHes a JSON job and its server takes jobs with BRPOP, so
the oldest waiting job is the list's tail (what Sidekiq's `Queue#latency`
reads). Its `enqueued_at` is epoch seconds (a float) up to Sidekiq 7 and epoch
milliseconds (an integer) from Sidekiq 8. An entry at the tail that is no job
with an enqueue time (garbage) is passed over for the next one.

Waiting work also sits in the `schedule` and `retry` sorted sets, scored by the
job's due time (float epoch seconds). Sidekiq's poller, which runs inside the
Sidekiq processes, moves due entries to their queue; with no process running
(a role at zero dynos) they would wait for ever. So due entries count as
waiting jobs of the queue named in each job, aged from their due time; entries
not yet due do not count.

In progress: each live process (member of the `processes` set whose hash still
exists; Sidekiq expires it 60 s after the last heartbeat) keeps one JSON entry
per running job naming its queue, in `<identity>:work` (Sidekiq 7 and 8) or
`<identity>:workers` (Sidekiq 6), counted per queue in one Lua script.
Per dyno: each live process's hash holds its `busy` count and its `info` (JSON:
the hostname, which Sidekiq takes from $DYNO on Heroku, e.g. worker.3, and its
queues). A process whose hostname is `<role>.<n>` and that serves a queue of
the role counts its busy jobs for dyno n of the role:
dynoscaler_dyno_in_progress, one series per dyno running (bounded by the
formation), for scale_down_when_busy's `wait` (Heroku stops the highest
numbers). A hostname of another form (Fir's random dyno names, a process run
without $DYNO) gives no series; the scaler then falls back to the count.
`stat:processed` is server-wide (see redis_shared.server_completed), and so
is the `dead` set (jobs out of retries, kept for inspection, not waiting work):
its size is dynoscaler_queue_dead with an empty queue label, published on the
same terms. (Counting it per queue would decode every entry, up to Sidekiq's
10,000, at every scrape.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import (
    LUA_HELPERS,
    Shared,
    busy_workers_script,
    due_age,
    in_progress,
    oldest_age,
    server_wide,
    skipped,
    worker_commands,
    worker_shared,
)
from exporter.metrics import Sample

_BUSY_BY_QUEUE = busy_workers_script(
    """
for _, identity in ipairs(redis.call('SMEMBERS', 'processes')) do
  if redis.call('EXISTS', identity) == 1 then
    for _, suffix in ipairs({':work', ':workers'}) do
      local key = identity .. suffix
      for _, entry in ipairs(values(redis.pcall('HVALS', key), key)) do
        count(entry, key)
      end
    end
  end
end
"""
)

# ARGV[1]: now. Due entries of the schedule and retry sets per queue named in
# the job: {queue, count, earliest due score, ...}, the skipped entries, and
# the dead set's size (false when it is no sorted set).
_DUE_BY_QUEUE = (
    LUA_HELPERS
    + """
local due = {}
for _, set in ipairs({'schedule', 'retry'}) do
  local entries = redis.call('ZRANGEBYSCORE', set, '-inf', ARGV[1], 'WITHSCORES')
  for i = 1, #entries, 2 do
    local ok, job = pcall(cjson.decode, entries[i])
    if ok and type(job) == 'table' and type(job.queue) == 'string' then
      local found = due[job.queue]
      local score = tonumber(entries[i + 1])
      if not found then
        due[job.queue] = {1, score, entries[i + 1]}
      else
        found[1] = found[1] + 1
        if score < found[2] then
          found[2], found[3] = score, entries[i + 1]
        end
      end
    else
      skip(set, 'entries that are no job naming its queue')
    end
  end
end
local list = {}
for queue, found in pairs(due) do
  list[#list + 1] = queue
  list[#list + 1] = found[1]
  list[#list + 1] = found[3]
end
local dead = redis.pcall('ZCARD', 'dead')
if type(dead) == 'table' and dead.err then
  skip('dead', 'not readable: ' .. dead.err)
  dead = false
end
return {list, flat(bad), dead}
"""
)

# KEYS[1]: the queue list. {length, the job nearest the tail that has an
# enqueue time (false if none among the last _READ_AT_MOST entries)}.
_READ_AT_MOST = 1000
_LENGTH_AND_OLDEST = f"""
local length = redis.call('LLEN', KEYS[1])
local read = 0
while read < math.min(length, {_READ_AT_MOST}) do
  local entries = redis.call('LRANGE', KEYS[1], -read - 50, -read - 1)
  if #entries == 0 then break end
  for i = #entries, 1, -1 do
    local ok, job = pcall(cjson.decode, entries[i])
    if ok and type(job) == 'table' and type(job.enqueued_at) == 'number' then
      return {{length, entries[i]}}
    end
  end
  read = read + #entries
end
return {{length, false}}
"""

# Sidekiq 8 writes milliseconds; no job was enqueued before 1973 in seconds either.
_MILLISECONDS_FROM = 1e11


# {info, busy, ...} of every live process.
_PROCESSES = """
local found = {}
for _, identity in ipairs(redis.call('SMEMBERS', 'processes')) do
  local fields = redis.pcall('HMGET', identity, 'info', 'busy')
  if type(fields) == 'table' and not fields.err and fields[1] then
    found[#found + 1] = fields[1]
    found[#found + 1] = fields[2] or '0'
  end
end
return found
"""


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    return [
        *worker_commands("stat:processed", _BUSY_BY_QUEUE),
        ("EVAL", _DUE_BY_QUEUE, 0, now),
        ("EVAL", _PROCESSES, 0),
    ]


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    shared = worker_shared(queues, replies[:2])
    due, bad, dead = replies[2]
    for queue, count, earliest in zip(due[::3], due[1::3], due[2::3], strict=True):
        name = queue.decode() if isinstance(queue, bytes) else queue
        shared.due[name] = (int(count), float(earliest))
    shared.errors += skipped("sidekiq", bad)
    if dead is not None:
        shared.samples += server_wide("dynoscaler_queue_dead", queues, int(dead))
    shared.samples += by_dyno(queues, replies[3])
    return shared


def by_dyno(queues: Sequence[Queue], processes: list[Any]) -> list[Sample]:
    """dynoscaler_dyno_in_progress from the processes' {info, busy, ...} (see above)."""
    roles: dict[tuple[str, str], set[str]] = {}
    for queue in queues:
        roles.setdefault((queue.app, queue.role), set()).add(queue.name)
    busy: dict[tuple[str, str, int], int] = {}
    for info, count in zip(processes[::2], processes[1::2], strict=True):
        try:
            process = json.loads(info)
            hostname, served = str(process["hostname"]), set(process["queues"])
            jobs = int(count)
        except (ValueError, TypeError, KeyError):
            continue  # not a process entry Sidekiq wrote: no dyno to tell
        role, _, number = hostname.rpartition(".")
        if not number.isdigit():
            continue
        for (app, name), names in roles.items():
            if name == role and served & names:
                key = (app, name, int(number))
                busy[key] = busy.get(key, 0) + jobs
    return [
        Sample("dynoscaler_dyno_in_progress", (app, role, "sidekiq", str(n)), jobs)
        for (app, role, n), jobs in sorted(busy.items())
    ]


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    return [("EVAL", _LENGTH_AND_OLDEST, 1, f"queue:{queue.name}")]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    ((length, oldest),) = replies
    due, due_for = due_age(queue, shared, now)
    depth = int(length) + due
    return [
        Sample("dynoscaler_queue_depth", queue.labels, depth),
        in_progress(queue, shared.busy),
        *oldest_age(queue, depth, age(oldest, now), due_for),
        *running_age(queue, shared, now),
    ]


def running_age(queue: Queue, shared: Shared, now: float) -> list[Sample]:
    """How long the queue's oldest job in progress has run, from its busy entry's
    run_at (seconds, or milliseconds in Sidekiq 8); none while nothing runs."""
    started = shared.busy_since.get(queue.name)
    if started is None or not shared.busy.get(queue.name):
        return []
    if started > _MILLISECONDS_FROM:
        started /= 1000
    name = "dynoscaler_queue_oldest_in_progress_age_seconds"
    return [Sample(name, queue.labels, max(0.0, now - started))]


def age(job: bytes | None, now: float) -> float | None:
    """Seconds since a Sidekiq job was enqueued (seconds or milliseconds), None if unknown."""
    try:
        enqueued_at = float(json.loads(job)["enqueued_at"])
    except (TypeError, ValueError, KeyError):  # no job, or not a Sidekiq job
        return None
    if enqueued_at > _MILLISECONDS_FROM:
        enqueued_at /= 1000
    return max(0.0, now - enqueued_at)
