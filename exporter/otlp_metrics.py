"""Fir's telemetry drains: HTTP server metrics over OTLP/HTTP (POST /otlp/<app>/v1/metrics).

An app instrumented with OpenTelemetry (its SDK and an HTTP server
instrumentation) reports how long each request took in the app as the
semantic conventions' histogram `http.server.request.duration` (seconds; the
older `http.server.duration`, milliseconds, is read too, by its unit). On Fir a
telemetry drain with `--signals metrics` carries it to POST /otlp/<app>/v1/metrics
(exporter.otlp decodes protobuf or JSON, gzip or not). Each data point adds to
dynoscaler_web_service_seconds{app, role}: the app's own service time, as the
exporter.web middleware reports it (without queue time, which OpenTelemetry's
conventions do not carry), so the rules take λ and S from it ahead of the
router's (prometheus/rules/web.yml). Other metrics are ignored.

What was assumed (Heroku's documentation names no attribute for the process
type): the role is the resource attribute `heroku.process.type`, else the
process type of a dyno name (web.1, web-12a34b56d-e78f9) in `heroku.dyno.name`,
`heroku.dyno`, `dyno` or `host.name` (a Fir dyno's host name is its dyno name);
`OTEL_RESOURCE_ATTRIBUTES=heroku.process.type=web` settles it. Only roles with
`requests: router` and no `middleware` (whose hash already gives the same
series) are fed; a role gets its series from its first data point on, so a role
whose app sends no metrics keeps the router's λ and S.

Points are cumulative (the SDK's default: each stream's running total; the
increase since the stream's last point is added, a smaller count or a new start
time is a restart) or delta (added as they are). A bucket of the app's bounds
counts in the first DURATION_BUCKETS bucket at or above its upper bound
(exact where the bounds are DURATION_BUCKETS', the conventions' 0.005 ... 10
but for 0.075, 0.75 and 7.5).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from exporter import otlp
from exporter.logdrain import dyno_role
from exporter.metrics import DURATION_BUCKETS, HistogramSample

DURATIONS = ("http.server.request.duration", "http.server.duration")
UNITS = {"s": 1.0, "ms": 1e-3}
PROCESS_TYPE = "heroku.process.type"
DYNO_NAMES = ("heroku.dyno.name", "heroku.dyno", "dyno", "host.name")
# Cumulative streams remembered (per app, role, resource and attributes); past it the
# oldest is forgotten (its next point then counts as a restart).
MAX_STREAMS = 10_000

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_SLOTS = len(DURATION_BUCKETS) + 1


class ServiceTimes:
    """dynoscaler_web_service_seconds per (app, role) from OTLP histogram points."""

    def __init__(self, roles: Iterable[tuple[str, str]]) -> None:
        self._roles = {key: ([0.0] * _SLOTS, [0.0]) for key in roles}
        self.apps = frozenset(app for app, _ in self._roles)
        self._seen: set[tuple[str, str]] = set()
        self._streams: dict[tuple[Any, ...], tuple[float, int, tuple[int, ...], float]] = {}
        self._lock = threading.Lock()

    def receive(self, app: str, request: ExportMetricsServiceRequest) -> int:
        """Add the duration points of one request; returns the requests they count."""
        counted = 0
        for resource_metrics in request.resource_metrics:
            resource = _attributes(resource_metrics.resource.attributes)
            role = _role(resource)
            if (app, role) not in self._roles:
                continue
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    scale = UNITS.get(metric.unit or "s")
                    if metric.name not in DURATIONS or scale is None:
                        continue
                    if metric.WhichOneof("data") != "histogram":
                        continue
                    cumulative = metric.histogram.aggregation_temporality == _CUMULATIVE
                    for point in metric.histogram.data_points:
                        stream = (app, role, resource, metric.name, _attributes(point.attributes))
                        counted += self._add(stream, point, scale, cumulative)
        return counted

    def _add(self, stream: tuple[Any, ...], point: Any, scale: float, cumulative: bool) -> int:
        bounds, counts = list(point.explicit_bounds), tuple(point.bucket_counts)
        total = point.sum * scale
        if len(counts) != len(bounds) + 1 or not math.isfinite(total) or total < 0:
            return 0  # not a histogram point this can read
        app, role = stream[0], stream[1]
        with self._lock:
            if cumulative:
                last = self._streams.pop(stream, None)
                self._streams[stream] = (point.start_time_unix_nano, point.count, counts, total)
                if len(self._streams) > MAX_STREAMS:
                    del self._streams[next(iter(self._streams))]
                if last is not None and last[0] == point.start_time_unix_nano:
                    increases = [now - before for now, before in zip(counts, last[2], strict=False)]
                    if len(last[2]) == len(counts) and min(increases, default=0) >= 0:
                        counts, total = tuple(increases), max(total - last[3], 0.0)
            buckets, sums = self._roles[(app, role)]
            for index, count in enumerate(counts):
                upper = bounds[index] * scale if index < len(bounds) else math.inf
                buckets[bisect_left(DURATION_BUCKETS, upper * (1 - 1e-9))] += count
            sums[0] += total
            self._seen.add((app, role))
        return sum(counts)

    def samples(self) -> list[HistogramSample]:
        with self._lock:
            return [
                HistogramSample("dynoscaler_web_service_seconds", key, tuple(b), s[0])
                for key, (b, s) in self._roles.items()
                if key in self._seen
            ]


def _attributes(attributes: Iterable[Any]) -> frozenset[tuple[str, str]]:
    found = set()
    for attribute in attributes:
        kind = attribute.value.WhichOneof("value")
        if kind in ("string_value", "int_value", "bool_value", "double_value"):
            found.add((attribute.key, str(getattr(attribute.value, kind))))
    return frozenset(found)


def _role(resource: frozenset[tuple[str, str]]) -> str | None:
    values = dict(resource)
    if PROCESS_TYPE in values:
        return values[PROCESS_TYPE]
    for key in DYNO_NAMES:
        if key in values and (role := dyno_role(values[key])) is not None:
            return role
    return None


def receive_metrics(
    stats: ServiceTimes, app: str, body: bytes, content_type: str, encoding: str
) -> tuple[int, bytes, str]:
    """Count the HTTP server duration points of one OTLP metrics POST: (requests counted,
    answer body, its media type). BadOtlpBody where the body cannot be read."""
    request, media = otlp.decode(body, content_type, encoding, ExportMetricsServiceRequest)
    counted = stats.receive(app, request)
    return counted, otlp.answer(ExportMetricsServiceResponse(), media), media
