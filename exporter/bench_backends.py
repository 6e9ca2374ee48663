"""Benchmark one scrape of a deep BullMQ, Dramatiq or RQ queue: the Lua scripts' cost.

The queues are written in each library's own layout (the keys and fields that
tests/test_exporter_bullmq.py, _dramatiq.py and _rq.py check against the libraries),
in the orders that cost the scripts most and least:

- bullmq fifo: jobs LPUSHed as BullMQ adds them; the walk from the tail stops
  after two job hashes.
- bullmq lifo: every job RPUSHed (`lifo`), so from the tail the times fall all
  the way: the walk reads every hash, up to 10,000.
- bullmq prioritized: the jobs in `prioritized` over 10 priority levels (one
  hash read per level); bullmq delayed: in `delayed`, half of them due.
- dramatiq: messages in the queue list (the first 1,000 bodies are decoded at
  each read) and as many in the delay queue, half of them due (again up to
  1,000 bodies).
- rq at_front: every job LPUSHed (`enqueue(at_front=True)`), so from the head
  the enqueue times fall all the way: the walk reads every hash, up to 1,000.

Each read is a RedisSource read of that one queue, timed in this process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from dynoscaler.benchstats import percentile, positive_whole, positive_wholes
from exporter.collectors import Queue
from exporter.collectors.redis_source import RedisSource

BENCH_URL = "redis://127.0.0.1:6379/14"  # flushed by every run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--depths",
        type=positive_wholes,
        default="100,1000,10000",
        help="queue depths (comma separated)",
    )
    parser.add_argument("--scrapes", type=positive_whole, default=20, help="reads per queue")
    parser.add_argument("--redis", default=BENCH_URL, help="a Redis URL whose database is flushed")


def _bullmq(order: str) -> Callable[[redis.Redis, int, float], int]:
    """Fill `bull:bench:` with `depth` jobs in `order`; the depth the exporter should read."""

    def fill(client: redis.Redis, depth: int, now: float) -> int:
        pipe = client.pipeline(transaction=False)
        added = int(now * 1000) - depth  # one job a millisecond, the oldest first
        due = 0
        for n in range(depth):
            timestamp, delay = added + n, 0
            if order == "delayed":
                delay = 60_000 if n % 2 else 0  # every other job due a minute from now
                due += not n % 2
                pipe.zadd("bull:bench:delayed", {str(n): (timestamp + delay) * 0x1000})
            elif order == "prioritized":
                priority = 1 + n % 10
                pipe.zadd("bull:bench:prioritized", {str(n): priority * 0x100000000 + n})
            else:
                pipe.execute_command("LPUSH" if order == "fifo" else "RPUSH", "bull:bench:wait", n)
            pipe.hset(f"bull:bench:{n}", mapping={"timestamp": timestamp, "delay": delay})
        pipe.execute()
        return due if order == "delayed" else depth

    return fill


def _dramatiq(client: redis.Redis, depth: int, now: float) -> int:
    pipe = client.pipeline(transaction=False)
    sent = int(now * 1000) - depth
    for n in range(depth):
        message = {
            "queue_name": "bench",
            "actor_name": "send",
            "args": [n],
            "kwargs": {},
            "options": {"redis_message_id": f"m{n}"},
            "message_id": f"id-{n}",
            "message_timestamp": sent + n,
        }
        pipe.hset("dramatiq:bench.msgs", f"m{n}", json.dumps(message, separators=(",", ":")))
        pipe.rpush("dramatiq:bench", f"m{n}")
        eta = sent + n + (60_000 if n % 2 else 0)  # every other one due
        delayed = {**message, "options": {"redis_message_id": f"d{n}", "eta": eta}}
        pipe.hset("dramatiq:bench.DQ.msgs", f"d{n}", json.dumps(delayed, separators=(",", ":")))
        pipe.rpush("dramatiq:bench.DQ", f"d{n}")
    pipe.execute()
    return depth + (min(depth, 1000) + 1) // 2  # the due ones among the 1,000 read


def _rq_at_front(client: redis.Redis, depth: int, now: float) -> int:
    pipe = client.pipeline(transaction=False)
    for n in range(depth):  # one job a millisecond, the oldest first, each put at the head
        enqueued = datetime.fromtimestamp(now - (depth - n) / 1000, UTC)
        pipe.hset(f"rq:job:{n}", "enqueued_at", enqueued.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        pipe.lpush("rq:queue:bench", n)
    pipe.execute()
    return depth


CASES: dict[str, tuple[str, Callable[[redis.Redis, int, float], int]]] = {
    "bullmq fifo": ("bullmq", _bullmq("fifo")),
    "bullmq lifo": ("bullmq", _bullmq("lifo")),
    "bullmq prioritized": ("bullmq", _bullmq("prioritized")),
    "bullmq delayed": ("bullmq", _bullmq("delayed")),
    "dramatiq": ("dramatiq", _dramatiq),
    "rq at_front": ("rq", _rq_at_front),
}


def run(args: argparse.Namespace) -> int:
    client = redis.Redis.from_url(args.redis)
    print(f"one queue per read, {args.scrapes} reads each, {args.redis}")
    header = f"{'case':<20} {'depth':>7} {'median ms':>10} {'p95 ms':>8}  depth read"
    print(f"{header}\n{'-' * len(header)}", flush=True)
    wrong = False
    try:
        for depth in args.depths:
            for case, (backend, fill) in CASES.items():
                client.flushdb()
                expected = fill(client, depth, time.time())
                times, read = _measure(args.redis, backend, args.scrapes)
                wrong |= read != expected
                verdict = "" if read == expected else " WRONG"
                print(
                    f"{case:<20} {depth:>7,} {statistics.median(times):>10.2f} "
                    f"{percentile(times, 95):>8.2f}  {read:,}{verdict}",
                    flush=True,
                )
    finally:
        client.flushdb()
        client.close()
    return 1 if wrong else 0


def _measure(url: str, backend: str, scrapes: int) -> tuple[list[float], int]:
    """Milliseconds of each read (after one to connect), and the depth the last one read."""
    source = RedisSource(url, [Queue("bench", "worker", "bench", backend)], timeout=5)
    times, depth = [], 0
    for scrape in range(scrapes + 1):
        started = time.perf_counter()
        samples = source.read()
        if scrape:
            times.append((time.perf_counter() - started) * 1000)
        depth = next(int(s.value) for s in samples if s.metric == "dynoscaler_queue_depth")
    source.client.close()
    return times, depth
