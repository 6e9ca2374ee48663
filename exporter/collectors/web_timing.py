"""Request timing hashes written by exporter.web's middleware, one per web role.

One source per Redis URL named by roles' `middleware: {url: ...}`: one pipeline
of HGETALL `dynoscaler:web:<role>` per scrape. A missing hash gives no series
(no request yet, or the middleware not installed); a key that is not a hash of
numbers is a ReadError that holds only its role (source_up 0 for backend
`web_timing`). The hash's counts become dynoscaler_web_queue_seconds,
dynoscaler_web_service_seconds and dynoscaler_web_queue_skewed_total, and its
response times (queue plus service) dynoscaler_job_total_seconds and
dynoscaler_jobs_within_deadline_total with queue="", folded on the role's
target_deadline as the job timing hashes' are (timing_reader).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.collectors import Feed, PartialRead, ReadError, Source, address
from exporter.collectors.timing_reader import total_grid, total_samples
from exporter.metrics import HistogramSample, Sample
from exporter.timing import BUCKET_FIELDS, TOTAL_SUM_FIELD
from exporter.web import QUEUE, SERVICE, SKEWED_FIELD, SUM_FIELD, web_timing_key

BACKEND = "web_timing"


class WebTimingSource:
    """The web timing hashes of the roles on one Redis server."""

    def __init__(
        self, url: str, roles: Sequence[tuple[str, str, float | None]], timeout: float
    ) -> None:
        """`roles`: (app, role, target_deadline) of the roles timed in this Redis."""
        self.address = address(url)
        self.feeds = tuple(Feed(BACKEND, app, role) for app, role, _ in roles)
        self.deadlines = {(app, role): deadline for app, role, deadline in roles}
        # No retries inside a scrape: the next scrape is the retry.
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def read(self) -> list[Sample | HistogramSample]:
        pipe = self.client.pipeline(transaction=False)
        for feed in self.feeds:
            pipe.hgetall(web_timing_key(feed.role))
        samples: list[Sample | HistogramSample] = []
        errors: list[ReadError] = []
        for feed, reply in zip(self.feeds, pipe.execute(raise_on_error=False), strict=True):
            key = web_timing_key(feed.role)
            try:
                if isinstance(reply, redis.ResponseError):
                    raise ValueError(str(reply))
                fields = {name.decode(): float(value) for name, value in reply.items()}
                totals = total_grid(fields)
            except (ValueError, UnicodeDecodeError) as error:
                message = f"{key}: not a hash of numbers ({error}): {feed.app}/{feed.role} held"
                errors.append(ReadError(BACKEND, message, frozenset({feed})))
                continue
            if fields:
                samples += _samples((feed.app, feed.role), fields)
            if totals:
                labels = (feed.app, feed.role, "")
                deadline = self.deadlines[(feed.app, feed.role)]
                total_sum = fields.get(TOTAL_SUM_FIELD, 0.0)
                samples += total_samples(labels, deadline, totals, total_sum)
        if errors:
            raise PartialRead(samples, errors)
        return samples


def _samples(key: tuple[str, str], fields: dict[str, float]) -> list[Sample | HistogramSample]:
    def histogram(metric: str, prefix: str) -> HistogramSample:
        counts = tuple(fields.get(prefix + field, 0.0) for field in BUCKET_FIELDS)
        return HistogramSample(metric, key, counts, fields.get(prefix + SUM_FIELD, 0.0))

    return [
        histogram("dynoscaler_web_queue_seconds", QUEUE),
        histogram("dynoscaler_web_service_seconds", SERVICE),
        Sample("dynoscaler_web_queue_skewed", key, fields.get(SKEWED_FIELD, 0.0)),
    ]


def web_timing_sources(
    roles: Sequence[tuple[str, str, str, float | None]], timeout: float
) -> list[Source]:
    """One source per Redis URL, from (url, app, role, target_deadline) of the roles with
    a middleware."""
    by_url: dict[str, list[tuple[str, str, float | None]]] = {}
    for url, app, role, deadline in roles:
        by_url.setdefault(url, []).append((app, role, deadline))
    return [WebTimingSource(url, pairs, timeout) for url, pairs in by_url.items()]
