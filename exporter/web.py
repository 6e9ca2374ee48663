"""Web-side request timing: queue time and service time of each request, into Redis.

Install it around the app, one line:

    # Flask
    app.wsgi_app = WsgiTimer(app.wsgi_app, redis.Redis.from_url(os.environ["REDIS_URL"]))
    # Django (wsgi.py)
    application = WsgiTimer(get_wsgi_application(), redis.Redis.from_url(...))
    # FastAPI / Starlette (or any ASGI app: AsgiTimer(app, client))
    app.add_middleware(AsgiTimer, client=redis.Redis.from_url(os.environ["REDIS_URL"]))

Queue time is from the router's X-Request-Start header to the moment the app
starts the request: milliseconds since the epoch (Heroku's router), or `t=`
then microseconds (`t=1700000000123456`, as nginx and others write it) or
seconds with a fraction (`t=1700000000.123`). Service time is from then until
the app returns (for ASGI: until it has sent its response). A request without
the header has a service time only. A queue time below zero or above
MAX_QUEUE_SECONDS (Heroku's router gives up after 30 s) is a clock out of step
or a header of another kind: counted apart (`skewed`), never recorded.

Each request adds its times to counters in memory (microseconds, under a lock);
a daemon thread of each process writes them to one hash per role,
`dynoscaler:web:<role>`, every FLUSH_SECONDS in one round trip (MULTI of
HINCRBY/HINCRBYFLOAT), so a request never waits on Redis and a dead Redis
costs requests nothing: the counts wait in memory for the next flush (logged
once per outage). The hash has the fields of exporter.timing's (one per
histogram bucket, counts not cumulative) twice, `queue:` and `service:`
prefixed, their sums, and `skewed`. The exporter reads it where a role has
`middleware: {url: ...}` (exporter/collectors/web_timing.py) and publishes
dynoscaler_web_queue_seconds and dynoscaler_web_service_seconds.

A request with a usable queue time also counts its response time, queue plus
service (router to response: what the role's target_deadline bounds), on
exporter.timing's enqueue-to-done grid (`total:le:<bound>` fields and
`total:sum`, unprefixed), which the exporter folds with the role's deadline into
dynoscaler_job_total_seconds and dynoscaler_jobs_within_deadline_total
(queue=""): the web role's share within the deadline in prometheus/rules/qos.yml.

The role is the process type of the dyno (`DYNO=web.1` or Fir's
`web-12a34b56d-e78f9`: web), else `role=`. A process killed before its flush
loses at most FLUSH_SECONDS of counts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.logdrain import dyno_role
from exporter.metrics import DURATION_BUCKETS
from exporter.timing import BUCKET_FIELDS, TOTAL_BOUNDS, TOTAL_FIELDS, TOTAL_SUM_FIELD

KEY_PREFIX = "dynoscaler:web:"
QUEUE, SERVICE = "queue:", "service:"
SUM_FIELD, SKEWED_FIELD = "sum", "skewed"
MAX_QUEUE_SECONDS = 60.0
FLUSH_SECONDS = 1.0
HEADER = "HTTP_X_REQUEST_START"
_ASGI_HEADER = b"x-request-start"

_log = logging.getLogger(__name__)
_SLOTS = len(DURATION_BUCKETS) + 1


def web_timing_key(role: str) -> str:
    return f"{KEY_PREFIX}{role}"


def request_start(header: str | bytes | None) -> float | None:
    """Seconds since the epoch of an X-Request-Start value; None if it is not one."""
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    text = text.strip().removeprefix("t=")
    try:
        if "." in text:
            return float(text)  # seconds with a fraction
        value = int(text)
    except ValueError:
        return None
    if value >= 10**15:
        return value / 1e6  # microseconds
    if value >= 10**12:
        return value / 1e3  # milliseconds
    return float(value)


class RequestTimes:
    """One role's counts of one process, in memory until flushed to its Redis hash."""

    def __init__(
        self,
        client: redis.Redis,
        role: str | None = None,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.role = role or dyno_role(os.environ.get("DYNO", "")) or "web"
        self.key = web_timing_key(self.role)
        self.flush_seconds = flush_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._counts = _Counts()
        self._flusher_pid = 0  # the process whose flusher runs (gunicorn forks after import)
        self._failing = False

    def record(self, started_at: float | None, began: float, ended: float) -> None:
        """Add one request: router stamp `started_at` (None: no header), app start and
        end (epoch seconds)."""
        service = max(ended - began, 0.0)
        queue = None if started_at is None else began - started_at
        skewed = queue is not None and not 0.0 <= queue <= MAX_QUEUE_SECONDS
        with self._lock:
            counts = self._counts
            counts.service[bisect_left(DURATION_BUCKETS, service)] += 1
            counts.sums[1] += service
            if skewed:
                counts.skewed += 1
            elif queue is not None:
                counts.queue[bisect_left(DURATION_BUCKETS, queue)] += 1
                counts.total[bisect_left(TOTAL_BOUNDS, queue + service)] += 1
                counts.sums[0] += queue
                counts.sums[2] += queue + service
        if self._flusher_pid != os.getpid():
            self._start_flusher()

    def flush(self) -> bool:
        """Write the counts so far in one round trip; False (counts kept) if Redis fails."""
        with self._lock:
            counts, self._counts = self._counts, _Counts()
        if not any(counts.service) and not counts.skewed:
            return True
        try:
            with self.client.pipeline(transaction=True) as pipe:
                for fields, slots in (
                    ([QUEUE + f for f in BUCKET_FIELDS], counts.queue),
                    ([SERVICE + f for f in BUCKET_FIELDS], counts.service),
                    (TOTAL_FIELDS, counts.total),
                ):
                    for field, count in zip(fields, slots, strict=True):
                        if count:
                            pipe.hincrby(self.key, field, count)
                pipe.hincrbyfloat(self.key, QUEUE + SUM_FIELD, counts.sums[0])
                pipe.hincrbyfloat(self.key, SERVICE + SUM_FIELD, counts.sums[1])
                if any(counts.total):
                    pipe.hincrbyfloat(self.key, TOTAL_SUM_FIELD, counts.sums[2])
                if counts.skewed:
                    pipe.hincrby(self.key, SKEWED_FIELD, counts.skewed)
                pipe.execute()
        except redis.RedisError as error:
            with self._lock:
                self._counts.add(counts)
            if not self._failing:
                _log.warning("dynoscaler web timing: cannot write %s: %s", self.key, error)
            self._failing = True
            return False
        if self._failing:
            _log.warning("dynoscaler web timing: writing %s again", self.key)
        self._failing = False
        return True

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
        threading.Thread(target=self._flush_forever, name="dynoscaler-web", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_seconds)
            self.flush()


class _Counts:
    """Requests counted since the last flush: histogram slots of queue and service time
    (DURATION_BUCKETS, +Inf) and of response time (TOTAL_BOUNDS, +Inf), the sums of the
    three, and the skewed queue times."""

    def __init__(self) -> None:
        self.queue, self.service = [0] * _SLOTS, [0] * _SLOTS
        self.total = [0] * len(TOTAL_FIELDS)
        self.sums = [0.0, 0.0, 0.0]
        self.skewed = 0

    def add(self, other: _Counts) -> None:
        """Add counts a failed flush gives back."""
        for mine, theirs in (
            (self.queue, other.queue),
            (self.service, other.service),
            (self.total, other.total),
            (self.sums, other.sums),
        ):
            for index, value in enumerate(theirs):
                mine[index] += value
        self.skewed += other.skewed


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Timer:
    """What both middlewares hold: the app, and the request times it records."""

    def __init__(
        self,
        app: Any,
        client: redis.Redis | None = None,
        role: str | None = None,
        times: RequestTimes | None = None,
    ) -> None:
        self.app = app
        self.times = times or RequestTimes(_client(client), role)


class WsgiTimer(_Timer):
    """WSGI middleware: times each request of `app` (see the module's docstring)."""

    app: WSGIApp

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        clock = self.times.clock
        began = clock()
        try:
            return self.app(environ, start_response)
        finally:
            self.times.record(request_start(environ.get(HEADER)), began, clock())


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]


class AsgiTimer(_Timer):
    """ASGI middleware: times each HTTP request of `app` (see the module's docstring)."""

    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock = self.times.clock
        began = clock()
        try:
            await self.app(scope, receive, send)
        finally:
            stamp = next((v for k, v in scope["headers"] if k == _ASGI_HEADER), None)
            self.times.record(request_start(stamp), began, clock())


def _client(client: redis.Redis | None) -> redis.Redis:
    """The given client, or one for REDIS_URL with short time-outs (a flush never hangs)."""
    if client is not None:
        return client
    url = os.environ.get("DYNOSCALER_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        raise ValueError("exporter.web: pass a Redis client or set REDIS_URL")
    return redis.Redis.from_url(
        url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
