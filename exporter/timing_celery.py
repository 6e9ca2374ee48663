"""exporter.timing for Celery: an enqueue time stamped at publish, and each task timed.

Celery's messages carry no enqueue time. `connect(client)`, called where tasks
are sent and in the workers, connects three Celery signals: before_task_publish
stamps every message with the header `dynoscaler_enqueued_at` (epoch seconds),
and task_prerun / task_postrun time each task into the hash of its queue (the
message's routing key) on `client`, with its enqueue-to-done time when the
message carries the stamp (one sent by a producer without it has a duration only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from celery import signals

from exporter.timing import JobTimer

HEADER = "dynoscaler_enqueued_at"


def connect(client: redis.Redis) -> Callable[[], None]:
    """Connect the handlers; returns what disconnects them."""
    timers: dict[str, JobTimer] = {}

    def stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is not None:
            headers.setdefault(HEADER, time.time())

    def started(task: Any = None, **_: Any) -> None:
        queue = _queue(task)
        timer = timers.get(queue)
        if timer is None:
            timer = timers[queue] = JobTimer(client, queue)
        timer.begin(getattr(task.request, HEADER, None))

    def finished(task: Any = None, **_: Any) -> None:
        timers[_queue(task)].end()

    handlers = (
        (signals.before_task_publish, stamp),
        (signals.task_prerun, started),
        (signals.task_postrun, finished),
    )
    for signal, handler in handlers:
        signal.connect(handler, weak=False)

    def disconnect() -> None:
        for signal, handler in handlers:
            signal.disconnect(handler)

    return disconnect


def _queue(task: Any) -> str:
    return (task.request.delivery_info or {}).get("routing_key") or "celery"
