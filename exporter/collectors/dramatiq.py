"""Dramatiq queues on Redis (its RedisBroker; on RabbitMQ see rabbitmq.py).

The broker's keys, under its namespace (`dramatiq` unless the queue's `prefix`
says otherwise), as dramatiq/brokers/redis/dispatch.lua keeps them:
`<ns>:<q>` a list of message ids (enqueue RPUSHes, fetch LPOPs from the head,
a stopping worker's requeue RPUSHes its prefetched messages back at the tail),
`<ns>:<q>.msgs` a hash of id -> message (JSON with `message_timestamp`, epoch
ms), `<ns>:<q>.DQ` and `<ns>:<q>.DQ.msgs` the delay queue (messages carry
`options.eta`, epoch ms), `<ns>:<q>.XQ` the dead letters (sorted set),
`<ns>:__acks__.<worker>.<q>` the ids a worker fetched and has not acked yet,
and `<ns>:__heartbeats__` the workers scored by their last call (ms).

One Lua script per queue:

- depth: the list's length; plus the due messages of the delay queue's list
  (a worker fetches delayed messages and moves them to the queue once due:
  with no worker running, a role at zero dynos, they would wait for ever);
  plus the messages fetched by dead workers (last heartbeat older than the
  broker's default heartbeat_timeout, 60 s: dispatch.lua's maintenance puts
  them back on the queue).
- in progress: the acks sets of the live workers for the queue: messages
  running or prefetched (a worker fetches up to `queue_prefetch`, twice its
  threads by default; set dramatiq_queue_prefetch to the threads for a count of
  running messages).
- oldest age: the earliest `message_timestamp` of the first _READ_AT_MOST
  messages of the list (not only the head: requeued messages go to the tail)
  and of dead workers' messages, and the earliest `eta` of due delayed
  messages. Dramatiq drops `eta` when it moves a due message to the queue, so
  there its age counts from when it was sent (as dramatiq's own AgeLimit does).
  Messages that are not JSON (another encoder) have no readable time.
  Only the first _READ_AT_MOST ids of the delay queue are read for due ones.
- dead: the dead letters of `<ns>:<q>.XQ` (messages out of retries, kept
  for the broker's dead_message_ttl, 7 days by default).
- no completed count: the broker deletes an acked message and counts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.collectors import Queue
from exporter.collectors.redis_shared import Shared, oldest_age
from exporter.metrics import Sample

# Message ids of the list and of the delay queue read at each scrape: about 10 to 20 ms
# of Redis time for 1,000 of each on the loaded development machine (bench backends).
_READ_AT_MOST = 1000
_HEARTBEAT_TIMEOUT_MS = 60_000  # dramatiq.brokers.redis.DEFAULT_HEARTBEAT_TIMEOUT

# KEYS[1]: `<ns>:<q>`. ARGV: now (ms), the heartbeat time-out (ms), the
# namespace, the queue name. Returns {list length, due delayed, dead workers'
# messages, live workers' messages, earliest ready time in ms or false, dead
# letters}.
_QUEUE = f"""
local queue, now = KEYS[1], tonumber(ARGV[1])
local _SENT = '"message_timestamp":(%d+)}}$'
local _ETA = '"eta":(%d+)}},"message_id":"[^"]*","message_timestamp":%d+}}$'
local oldest = false
local function ready(message, eta)
  if not message then return nil end
  -- dramatiq's JSONEncoder writes the fields in this order, so a match is cheaper
  -- than decoding; anything else (another encoder) is decoded.
  local matched = string.match(message, eta and _ETA or _SENT, eta and -200 or -40)
  if matched then return tonumber(matched) end
  local ok, body = pcall(cjson.decode, message)
  if not ok or type(body) ~= 'table' then return nil end
  local at = body.message_timestamp
  if eta then at = type(body.options) == 'table' and body.options.eta end
  if type(at) ~= 'number' then return nil end
  return at
end
local function consider(at)
  if at and (not oldest or at < oldest) then oldest = at end
end
local function messages(hash, ids)
  local found = {{}}
  for first = 1, #ids, 100 do
    local part = redis.call('HMGET', hash, unpack(ids, first, math.min(first + 99, #ids)))
    for _, message in ipairs(part) do found[#found + 1] = message end
  end
  return found
end
local length = redis.call('LLEN', queue)
local ids = redis.call('LRANGE', queue, 0, {_READ_AT_MOST - 1})
for _, message in ipairs(messages(queue .. '.msgs', ids)) do
  consider(ready(message, false))
end
local due = 0
local function count_due(delayed)
  for _, message in ipairs(messages(queue .. '.DQ.msgs', delayed)) do
    local eta = ready(message, true)
    if eta and eta <= now then
      due = due + 1
      consider(eta)
    end
  end
end
count_due(redis.call('LRANGE', queue .. '.DQ', 0, {_READ_AT_MOST - 1}))
local orphaned, live = 0, 0
local workers = redis.call('ZRANGE', ARGV[3] .. ':__heartbeats__', 0, -1, 'WITHSCORES')
for i = 1, #workers, 2 do
  local acks = ARGV[3] .. ':__acks__.' .. workers[i] .. '.' .. ARGV[4]
  if tonumber(workers[i + 1]) > now - tonumber(ARGV[2]) then
    live = live + redis.call('SCARD', acks)
  else
    for _, message in ipairs(messages(queue .. '.msgs', redis.call('SMEMBERS', acks))) do
      if message then
        orphaned = orphaned + 1
        consider(ready(message, false))
      end
    end
    count_due(redis.call('SMEMBERS', acks .. '.DQ'))
  end
end
return {{length, due, orphaned, live, oldest, redis.call('ZCARD', queue .. '.XQ')}}
"""


def shared_commands(queues: Sequence[Queue], now: float) -> list[tuple[Any, ...]]:
    return []


def parse_shared(queues: Sequence[Queue], replies: list[Any], now: float) -> Shared:
    return Shared()


def queue_commands(queue: Queue, now: float) -> list[tuple[Any, ...]]:
    namespace = "dramatiq" if queue.prefix is None else queue.prefix
    key = f"{namespace}:{queue.name}"
    return [("EVAL", _QUEUE, 1, key, int(now * 1000), _HEARTBEAT_TIMEOUT_MS, namespace, queue.name)]


def parse_queue(queue: Queue, replies: list[Any], now: float, shared: Shared) -> list[Sample]:
    ((length, due, orphaned, live, oldest, dead),) = replies
    depth = int(length) + int(due) + int(orphaned)
    age = None if oldest is None else max(0.0, now - int(oldest) / 1000)
    return [
        Sample("dynoscaler_queue_depth", queue.labels, depth),
        Sample("dynoscaler_queue_in_progress", queue.labels, int(live)),
        *oldest_age(queue, depth, age),
        Sample("dynoscaler_queue_dead", queue.labels, int(dead)),
    ]
