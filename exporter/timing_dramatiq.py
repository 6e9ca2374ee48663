"""exporter.timing for Dramatiq: a middleware timing every message, with its enqueue time.

In the worker, `broker.add_middleware(TimingMiddleware(redis_client))` records
each message's processing time and its time from `message_timestamp` (epoch
milliseconds, set when the message is built, at send) to done, into a hash per
queue on that Redis; a message that fails or is skipped is timed too.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import redis

from exporter.timing import JobTimer


class TimingMiddleware(dramatiq.Middleware):
    """Times each message a dramatiq worker processes, per queue, into `client`."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._timers: dict[str, JobTimer] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        queue = message.queue_name
        timer = self._timers.get(queue)
        if timer is None:
            timer = self._timers[queue] = JobTimer(self.client, queue)
        timer.begin(enqueued_at=message.message_timestamp / 1000)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._timers[message.queue_name].end()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._timers[message.queue_name].end()
