"""One Redis server: every queue of every Redis-based backend in one pipeline.

Each backend module reads in two parts, both in the same pipeline (one round
trip per scrape):

- `shared_commands(queues, now)` / `parse_shared(queues, replies, now)`: the
  server-wide keys its queues' figures need (busy workers, scheduled sets, the
  processed counter), parsed into a `Shared` (samples, per-queue data, and the
  entries it had to skip);
- `queue_commands(queue, now)` / `parse_queue(queue, replies, now, shared)`: one
  queue's own keys.

A failed reply or an unreadable value costs only what it feeds: a queue's own
key of the wrong type leaves out that queue's series, a shared key that cannot
be read leaves out the series of that backend's queues on this server, and a
malformed entry (a busy job naming no queue) is skipped. Each becomes a
ReadError (logged and counted by the collector; the roles whose series are left
out report dynoscaler_source_up 0 and hold). The client reconnects by itself
after a failure of the whole server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.collectors import (
    Feed,
    PartialRead,
    Queue,
    ReadError,
    Source,
    address,
    bullmq,
    by_url,
    celery,
    dramatiq,
    feeds,
    redis_list,
    resque,
    rq,
    sidekiq,
    timing_reader,
)
from exporter.collectors.rabbitmq import rabbitmq_sources
from exporter.collectors.redis_shared import Shared
from exporter.metrics import HistogramSample, Sample

BACKENDS: dict[str, ModuleType] = {
    "sidekiq": sidekiq,
    "resque": resque,
    "rq": rq,
    "celery": celery,
    "redis_list": redis_list,
    "bullmq": bullmq,
    "dramatiq": dramatiq,
}

Command = tuple[Any, ...]
# A value a backend could not use: malformed JSON, a number that is not one.
_UNREADABLE = (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeDecodeError)


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
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        plan = []
        for module, queues in self.parts:
            shared = module.shared_commands(queues, now)
            own = [module.queue_commands(queue, now) for queue in queues]
            for command in [*shared, *(command for part in own for command in part)]:
                pipe.execute_command(*command)
            plan.append((module, queues, shared, own))
        replies = iter(pipe.execute(raise_on_error=False))
        samples: list[Sample | HistogramSample] = []
        errors: list[ReadError] = []
        for module, queues, shared, own in plan:
            samples += _parse(module, queues, shared, own, replies, now, errors)
        if errors:
            raise PartialRead(samples, errors)
        return samples


def _parse(
    module: ModuleType,
    queues: list[Queue],
    shared_commands: list[Command],
    own_commands: list[list[Command]],
    replies: Iterator[Any],
    now: float,
    errors: list[ReadError],
) -> list[Sample | HistogramSample]:
    """One backend's samples; what it could not read goes to `errors`."""
    shared_replies = [next(replies) for _ in shared_commands]
    own_replies = [[next(replies) for _ in commands] for commands in own_commands]
    failure = _failure(shared_commands, shared_replies)
    if failure is None:
        try:
            shared: Shared = module.parse_shared(queues, shared_replies, now)
        except _UNREADABLE as error:
            failure = f"{_describe(shared_commands[0])}: unreadable reply ({error})"
    if failure is not None:  # every queue of this backend here depends on it
        for backend in sorted({queue.backend for queue in queues}):
            held = frozenset(_feed(q) for q in queues if q.backend == backend)
            errors.append(ReadError(backend, f"{failure}: {_left_out(backend, queues)}", held))
        return []
    samples: list[Sample | HistogramSample] = list(shared.samples)
    errors += shared.errors
    for queue, commands, replies_ in zip(queues, own_commands, own_replies, strict=True):
        failure = _failure(commands, replies_)
        if failure is None:
            try:
                samples += module.parse_queue(queue, replies_, now, shared)
                continue
            except _UNREADABLE as error:
                failure = f"{_describe(commands[0])}: unreadable reply ({error})"
        message = f"{failure}: queue {queue.name} of {queue.app}/{queue.role} left out"
        errors.append(ReadError(queue.backend, message, frozenset({_feed(queue)})))
    return samples


def _failure(commands: list[Command], replies: list[Any]) -> str | None:
    """The first failed command and its error (e.g. WRONGTYPE: a key that is not a list)."""
    for command, reply in zip(commands, replies, strict=True):
        if isinstance(reply, redis.ResponseError):
            return f"{_describe(command)}: {reply}"
    return None


def _describe(command: Command) -> str:
    if command[0] == "EVAL":  # EVAL script numkeys key...
        return f"Lua script on {command[3]}" if command[2] else "Lua script"
    return f"{command[0]} {command[1]}"


def _left_out(backend: str, queues: list[Queue]) -> str:
    names = ", ".join(f"{q.name} of {q.app}/{q.role}" for q in queues if q.backend == backend)
    return f"{backend} queues {names} left out"


def _feed(queue: Queue) -> Feed:
    return Feed(queue.backend, queue.app, queue.role)


def redis_sources(queues: Sequence[tuple[str, Queue]], timeout: float) -> list[Source]:
    """One source per Redis URL, from (url, queue) pairs of the BACKENDS.

    A Celery or Dramatiq queue whose URL is a RabbitMQ management API (http or
    https: on RabbitMQ) is read through that API instead, with that library's
    meaning of its figures (rabbitmq.py).
    """
    on_rabbitmq = [pair for pair in queues if urlsplit(pair[0]).scheme in ("http", "https")]
    on_redis = [pair for pair in queues if pair not in on_rabbitmq]
    return [
        *(RedisSource(url, group, timeout) for url, group in by_url(on_redis).items()),
        *rabbitmq_sources(on_rabbitmq, timeout),
    ]
