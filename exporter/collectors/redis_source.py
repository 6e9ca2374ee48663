"""One Redis server: every queue of every Redis-based backend in one pipeline.

Each backend module adds its commands for its queues on this server; the
pipeline goes out in one round trip per scrape, and each module parses its
slice of the replies. The client reconnects by itself after a failure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.collectors import (
    Queue,
    address,
    by_url,
    celery,
    feeds,
    redis_list,
    resque,
    rq,
    sidekiq,
    timing_reader,
)
from exporter.metrics import HistogramSample, Sample

BACKENDS: dict[str, ModuleType] = {
    "sidekiq": sidekiq,
    "resque": resque,
    "rq": rq,
    "celery": celery,
    "redis_list": redis_list,
}


class RedisSource:
    def __init__(self, url: str, queues: Sequence[Queue], timeout: float) -> None:
        self.address = address(url)
        self.feeds = feeds(queues)
        # No retries inside a scrape: the next scrape is the retry, and the
        # source stays inside its time-out.
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.parts: list[tuple[ModuleType, list[Queue]]] = [
            (BACKENDS[backend], [q for q in queues if q.backend == backend])
            for backend in sorted({queue.backend for queue in queues})
        ]
        self.parts.append((timing_reader, list(queues)))

    def read(self) -> list[Sample | HistogramSample]:
        pipe = self.client.pipeline(transaction=False)
        sizes, commands = [], []
        for module, queues in self.parts:
            part = module.commands(queues)
            for command in part:
                pipe.execute_command(*command)
            sizes.append(len(part))
            commands += part
        replies = pipe.execute(raise_on_error=False)
        _raise_first_error(commands, replies)
        now, start, samples = time.time(), 0, []
        for (module, queues), size in zip(self.parts, sizes, strict=True):
            samples += module.parse(queues, replies[start : start + size], now)
            start += size
        return samples


def _raise_first_error(commands: list[tuple[Any, ...]], replies: list[Any]) -> None:
    """Raise a failed command's error (e.g. WRONGTYPE: a key that is not a list) with its key."""
    for command, reply in zip(commands, replies, strict=True):
        if isinstance(reply, redis.ResponseError):
            raise redis.ResponseError(f"{_describe(command)}: {reply}")


def _describe(command: tuple[Any, ...]) -> str:
    if command[0] == "EVAL":  # EVAL script numkeys key...
        return f"Lua script on {command[3]}" if command[2] else "Lua script"
    return f"{command[0]} {command[1]}"


def redis_sources(queues: Sequence[tuple[str, Queue]], timeout: float) -> list[RedisSource]:
    """One source per Redis URL, from (url, queue) pairs of Redis-based backends."""
    return [RedisSource(url, group, timeout) for url, group in by_url(queues).items()]
