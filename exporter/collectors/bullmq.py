"""BullMQ queues (Node.js, and its Python port, which runs the same Lua scripts).

Keys of a queue are `<prefix>:<name>:<kind>`, the prefix `bull` unless the
queue's `prefix` says otherwise; a job is the hash `<prefix>:<name>:<id>` with
`timestamp` (epoch milliseconds of the add) and `delay` (milliseconds). One Lua
script per queue reads it all at once (taskforcesh/bullmq src/commands/*.lua):

- depth: the `wait` list (addStandardJob: LPUSH, or RPUSH for `lifo` jobs; a
  worker takes the tail, moveToActive), the legacy `paused` list (a queue paused
  before BullMQ 5 moved its jobs there; since then a paused queue keeps them in
  `wait` with `paused` set in `meta`: they count as waiting either way), the
  `prioritized` sorted set (addPrioritizedJob), the due entries of the `delayed`
  set, and the stalled jobs of `active`. A delayed job's score is its ready
  time (timestamp + delay, ms) times 0x1000 plus a counter (getDelayedScore);
  BullMQ's workers promote due ones, so with no worker running (a role at zero
  dynos) they would wait for ever: they are waiting work. Deprecated `0:`
  marker entries in `wait` (getCounts skips them too) are not jobs.
- in progress: the jobs of `active` whose lock `<id>:lock` exists. A worker
  renews the lock while it runs the job; a job whose lock has expired is
  stalled (its worker died), and BullMQ's stalled check (checkStalledJobs)
  moves it back to `wait`, so it counts as waiting.
- oldest age: from the earliest ready time (the job's timestamp + delay, what
  BullMQ's getOldestJobTimestamp reads) of the waiting jobs: from the tail of
  `wait`, where the times fall through the `lifo` jobs to the oldest and then
  rise (the walk stops there, or after _READ_AT_MOST ids); the first job of
  each priority band of
  `prioritized` (its score is priority * 0x100000000 + an insertion counter, so
  a band's first job is its oldest); the earliest due delayed job (from its
  score); the stalled jobs. A job id whose hash is gone is passed over. A
  worker that promotes a due delayed job sets its `delay` to 0
  (promoteDelayedJobs), so in `wait` it reads as ready since its add.
- dead: the `failed` set (jobs out of attempts, kept as removeOnFail says).
- completed: the `count` of `metrics:completed` and `metrics:failed`, which
  BullMQ keeps only for workers started with the `metrics` option
  (collectMetrics); without it there is no count (the `completed` and `failed`
  sets are trimmed by removeOnComplete/removeOnFail), and no series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import Shared, oldest_age
from exporter.metrics import Sample

# Job ids of `wait` (and priority bands) read for the age: a walk through all of them
# (every job `lifo`) reads a hash each, 19 ms for 1,000 and 156 ms for 10,000
# (dynoscaler bench backends).
_READ_AT_MOST = 1000
_DELAYED_SCORE_STEP = 0x1000  # getDelayedScore: ready time (ms) * 0x1000 + counter

# KEYS[1]: `<prefix>:<name>:`. ARGV[1]: the highest score of a due delayed job.
# Returns {waiting in the lists, prioritized, due delayed, live active, stalled,
# earliest ready time in ms or false, completed count or false, failed}.
_QUEUE = f"""
local prefix = KEYS[1]
local oldest = false
local function consider(id)
  local fields = redis.pcall('HMGET', prefix .. id, 'timestamp', 'delay')
  if type(fields) ~= 'table' or fields.err then return nil end
  local at = tonumber(fields[1])
  if not at then return nil end
  local ready = at + (tonumber(fields[2]) or 0)
  if not oldest or ready < oldest then oldest = ready end
  return ready
end
local waiting = 0
for _, list in ipairs({{'wait', 'paused'}}) do
  local key = prefix .. list
  local length = redis.call('LLEN', key)
  waiting = waiting + length
  local read, lowest = 0, false
  while read < math.min(length, {_READ_AT_MOST}) do
    local ids = redis.call('LRANGE', key, -read - 100, -read - 1)
    if #ids == 0 then break end
    for i = #ids, 1, -1 do
      if string.sub(ids[i], 1, 2) == '0:' then
        waiting = waiting - 1
      else
        local ready = consider(ids[i])
        if ready and lowest and ready > lowest then read = length break end
        if ready and (not lowest or ready < lowest) then lowest = ready end
      end
    end
    read = read + #ids
  end
end
local prioritized = redis.call('ZCARD', prefix .. 'prioritized')
local band, bands = 0, 0
while bands < {_READ_AT_MOST} do
  bands = bands + 1
  local first = redis.call('ZRANGEBYSCORE', prefix .. 'prioritized', band, '+inf',
    'WITHSCORES', 'LIMIT', 0, 1)
  if #first == 0 then break end
  consider(first[1])
  band = (math.floor(tonumber(first[2]) / 0x100000000) + 1) * 0x100000000
end
local due = redis.call('ZCOUNT', prefix .. 'delayed', 0, ARGV[1])
if due > 0 then
  local first = redis.call('ZRANGE', prefix .. 'delayed', 0, 0, 'WITHSCORES')
  local ready = math.floor(tonumber(first[2]) / {_DELAYED_SCORE_STEP})
  if not oldest or ready < oldest then oldest = ready end
end
local live, stalled = 0, 0
for _, id in ipairs(redis.call('LRANGE', prefix .. 'active', 0, -1)) do
  if redis.call('EXISTS', prefix .. id .. ':lock') == 1 then
    live = live + 1
  else
    stalled = stalled + 1
    consider(id)
  end
end
local completed = false
for _, kind in ipairs({{'completed', 'failed'}}) do
  local count = redis.call('HGET', prefix .. 'metrics:' .. kind, 'count')
  if count then completed = (completed or 0) + tonumber(count) end
end
local failed = redis.call('ZCARD', prefix .. 'failed')
return {{waiting, prioritized, due, live, stalled, oldest, completed, failed}}
"""


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    return []


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    return Shared()


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    prefix = "bull" if queue.prefix is None else queue.prefix
    due_until = (int(now * 1000) + 1) * _DELAYED_SCORE_STEP - 1
    return [("EVAL", _QUEUE, 1, f"{prefix}:{queue.name}:", due_until)]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    ((waiting, prioritized, due, live, stalled, oldest, completed, failed),) = replies
    depth = int(waiting) + int(prioritized) + int(due) + int(stalled)
    age = None if oldest is None else max(0.0, now - int(oldest) / 1000)
    samples = [
        Sample("dynoscaler_queue_depth", queue.labels, depth),
        Sample("dynoscaler_queue_in_progress", queue.labels, int(live)),
        *oldest_age(queue, depth, age),
        Sample("dynoscaler_queue_dead", queue.labels, int(failed)),
    ]
    if completed is not None:
        samples.append(Sample("dynoscaler_jobs_completed", queue.labels, int(completed)))
    return samples
