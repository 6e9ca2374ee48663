"""RabbitMQ queues through the management HTTP API, one request per API address.

The queue URL is the API address with credentials and vhost, e.g.
http://guest:guest@127.0.0.1:15672/%2F. One GET /api/queues/<vhost> (only the
needed columns) serves every queue of that vhost. What the figures mean
depends on when the consumers acknowledge:

`rabbitmq` (consumers ack a message when its job is done):

- messages_ready -> depth; messages_unacknowledged -> in progress (delivered,
  not yet acknowledged: running, or prefetched by a consumer that has not
  started it: set the consumers' prefetch to their concurrency);
- message_stats.ack + deliver_no_ack (acknowledged, or delivered to an
  auto-ack consumer) -> completed; RabbitMQ resets these with the node, which
  Prometheus' rate() reads as a counter reset;
- head_message_timestamp (present only when publishers set the timestamp
  property; seconds by the AMQP spec, milliseconds from many clients, told
  apart by size) -> oldest age, 0 when the queue is empty.

`celery` with a management API URL (Celery on RabbitMQ): Celery acknowledges a
task when a worker starts it (unless `task_acks_late`), so
messages_unacknowledged are tasks prefetched by a worker and not started, and
`ack` counts starts, not completions. So depth = messages_ready +
messages_unacknowledged (tasks not started; with `task_acks_late`, also the
running ones), and neither in progress nor completed is published: the
running tasks are not visible in the broker. Celery sets no AMQP timestamp, so
the oldest age is only known (0) for an empty queue.

`dramatiq` with a management API URL (Dramatiq's RabbitmqBroker): Dramatiq
acknowledges a message when its actor is done (failures that exhausted their
retries are rejected to `<q>.XQ`), so the `rabbitmq` figures of queue `<q>`
mean what they say: messages_unacknowledged are running or prefetched (each
worker prefetches `dramatiq_queue_prefetch`, twice its threads by default) and
`ack` counts finished attempts; `<q>.XQ`'s messages_ready are its dead
letters. What cannot be read: Dramatiq sets no AMQP timestamp (its
`message_timestamp` is in the body, which the API reads only by consuming), so
the oldest age is only known (0) for an empty queue; and the
delayed messages of `<q>.DQ` carry their due time in the body too, so due ones
are not counted as waiting (workers fetch them at once and hold them until
due; with no worker running they wait unseen).

A configured queue that does not exist yet gives no series.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from exporter.collectors import Queue, address, by_url, feeds
from exporter.metrics import Sample

_COLUMNS = (
    "name,messages_ready,messages_unacknowledged,head_message_timestamp,"
    "message_stats.ack,message_stats.deliver_no_ack"
)

# A timestamp this large is in milliseconds (in seconds it would be after the year 5138).
_MILLISECONDS_FROM = 1e11


class RabbitMQSource:
    def __init__(self, url: str, queues: Sequence[Queue], timeout: float) -> None:
        parts = urlsplit(url)
        self.address = address(url)
        self.feeds = feeds(queues)
        vhost = parts.path.strip("/") or "%2F"
        port = f":{parts.port}" if parts.port else ""
        self.endpoint = f"{parts.scheme}://{parts.hostname}{port}/api/queues/{vhost}"
        # RabbitMQ's default user when the URL names none.
        self.auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        self.queues = list(queues)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False

    def read(self) -> list[Sample]:
        response = self.session.get(
            self.endpoint, params={"columns": _COLUMNS}, auth=self.auth, timeout=self.timeout
        )
        response.raise_for_status()
        found = {entry["name"]: entry for entry in response.json()}
        now = time.time()
        samples = []
        for queue in self.queues:
            # Right after a (re)start the API lists queues before their counts.
            if "messages_ready" in found.get(queue.name, {}):
                entry = found[queue.name]
                read = _celery_samples if queue.backend == "celery" else _samples
                samples += read(queue, entry, now)
                if queue.backend == "dramatiq":
                    samples += _dead_letters(queue, found.get(f"{queue.name}.XQ", {}))
        return samples


def _samples(queue: Queue, entry: dict[str, Any], now: float) -> list[Sample]:
    stats = entry.get("message_stats") or {}
    head, ready = entry.get("head_message_timestamp"), entry["messages_ready"]
    samples = [
        Sample("dynoscaler_queue_depth", queue.labels, ready),
        Sample("dynoscaler_queue_in_progress", queue.labels, entry["messages_unacknowledged"]),
        Sample(
            "dynoscaler_jobs_completed",
            queue.labels,
            stats.get("ack", 0) + stats.get("deliver_no_ack", 0),
        ),
    ]
    if head is not None or ready == 0:
        age = head_age(head, now) if head is not None else 0.0
        samples.append(Sample("dynoscaler_queue_oldest_age_seconds", queue.labels, age))
    return samples


def _celery_samples(queue: Queue, entry: dict[str, Any], now: float) -> list[Sample]:
    waiting = entry["messages_ready"] + entry["messages_unacknowledged"]
    samples = [Sample("dynoscaler_queue_depth", queue.labels, waiting)]
    if waiting == 0:
        samples.append(Sample("dynoscaler_queue_oldest_age_seconds", queue.labels, 0.0))
    return samples


def _dead_letters(queue: Queue, entry: dict[str, Any]) -> list[Sample]:
    """Dramatiq's dead-letter queue `<q>.XQ`: messages rejected after their last retry."""
    if "messages_ready" not in entry:
        return []
    return [Sample("dynoscaler_queue_dead", queue.labels, entry["messages_ready"])]


def head_age(timestamp: float, now: float) -> float:
    """Seconds since a message's timestamp property, in seconds or milliseconds."""
    if timestamp > _MILLISECONDS_FROM:
        timestamp /= 1000
    return max(0.0, now - timestamp)


def rabbitmq_sources(queues: Sequence[tuple[str, Queue]], timeout: float) -> list[RabbitMQSource]:
    """One source per management API address and vhost."""
    return [RabbitMQSource(url, group, timeout) for url, group in by_url(queues).items()]
