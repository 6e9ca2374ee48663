"""Fir's telemetry drains: OTLP/HTTP HTTP server metrics at POST /otlp/<app>/v1/metrics."""

from __future__ import annotations

import gzip

import pytest
from exporter_helpers import DRAIN_TOKEN, exporter, labels, write_config
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from test_exporter_otlp import otlp_post

from exporter.otlp_metrics import ServiceTimes, receive_metrics

pytestmark = pytest.mark.timeout(60)

WEB = labels(app="shop", role="web")
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
ADVISED = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


def test_the_sdks_http_server_durations_become_web_service_times(tmp_path):
    """Protobuf, gzip, from the SDK's own exporter; then refusals."""
    roles = {"web": {"requests": "router"}, "worker": {"middleware": {"url": "redis://x/14"}}}
    config = write_config(tmp_path, {"shop": {"roles": roles}})
    with exporter(config) as running:
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(
                endpoint=f"{running.url}/otlp/shop/v1/metrics",
                headers={"Authorization": f"Bearer {DRAIN_TOKEN}"},
                compression=Compression.Gzip,
            ),
            export_interval_millis=3_600_000,
        )
        # A Fir dyno's host name is its dyno name: web-12a34b56d-e78f9 -> web
        resource = Resource({"service.name": "shop", "host.name": "web-12a34b56d-e78f9"})
        provider = MeterProvider(resource=resource, metric_readers=[reader])
        # the bounds the semantic conventions advise, as HTTP instrumentations pass them
        duration = provider.get_meter("http").create_histogram(
            "http.server.request.duration", unit="s", explicit_bucket_boundaries_advisory=ADVISED
        )
        other = provider.get_meter("http").create_counter("http.server.active_requests")
        before = running.scrape()
        for seconds in (0.004, 0.02, 0.02, 0.3, 2.0):
            duration.record(seconds, {"http.request.method": "GET", "http.route": "/"})
        duration.record(0.02, {"http.request.method": "POST", "http.route": "/orders"})
        other.add(3)
        assert provider.force_flush()
        first = running.scrape()
        duration.record(0.7, {"http.request.method": "GET", "http.route": "/"})
        assert provider.force_flush()  # cumulative: the second export repeats the first's
        second = running.scrape()
        provider.shutdown()
        url = f"{running.url}/otlp/shop/v1/metrics"
        bad = otlp_post(url, b'{"resourceMetrics": 3}', {"Content-Type": "application/json"})
        unknown = otlp_post(f"{running.url}/otlp/other/v1/metrics", b"")
        third = running.scrape()

    assert ("dynoscaler_web_service_seconds_count", WEB) not in before  # none before the first
    assert first[("dynoscaler_web_service_seconds_count", WEB)] == 6
    assert first[("dynoscaler_web_service_seconds_sum", WEB)] == pytest.approx(2.364)
    bucket = ("dynoscaler_web_service_seconds_bucket", labels(app="shop", role="web", le="0.025"))
    assert first[bucket] == 4
    assert second[("dynoscaler_web_service_seconds_count", WEB)] == 7
    assert second[("dynoscaler_web_service_seconds_sum", WEB)] == pytest.approx(3.064)
    assert bad.status_code == 400 and "not an OTLP metrics request" in bad.text
    assert unknown.status_code == 404
    assert third[("dynoscaler_web_service_seconds_count", WEB)] == 7  # the refused: nothing
    # the worker has the middleware: its hash gives the series, not the drain
    assert not [
        k for k in second if k[0].startswith("dynoscaler_web_") and ("role", "worker") in k[1]
    ]


def histogram_request(
    points: list[tuple[int, list[float], list[int], float]],
    temporality: int = CUMULATIVE,
    unit: str = "s",
    resource: dict[str, str] | None = None,
    name: str = "http.server.request.duration",
) -> ExportMetricsServiceRequest:
    """One resource, one histogram metric, a point per (start time, bounds, counts, sum)."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    for key, value in (resource or {"heroku.process.type": "web"}).items():
        attribute = resource_metrics.resource.attributes.add()
        attribute.key, attribute.value.string_value = key, value
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.name, metric.unit = name, unit
    metric.histogram.aggregation_temporality = temporality
    for start, bounds, counts, total in points:
        point = metric.histogram.data_points.add()
        point.start_time_unix_nano = start
        point.explicit_bounds.extend(bounds)
        point.bucket_counts.extend(counts)
        point.count, point.sum = sum(counts), total
    return request


def totals(stats: ServiceTimes) -> tuple[tuple[float, ...], float] | None:
    found = [s for s in stats.samples() if s.labels == ("shop", "web")]
    return (found[0].buckets, found[0].sum) if found else None


def test_delta_points_in_milliseconds_as_json():
    stats = ServiceTimes([("shop", "web")])
    request = histogram_request([(1, [5, 75, 250], [1, 2, 3, 4], 6000.0)], DELTA, unit="ms")
    body = MessageToJson(request).encode()
    counted, answer, media = receive_metrics(stats, "shop", body, "application/json", "")
    assert (counted, media, answer) == (10, "application/json", b"{}")
    buckets, total = totals(stats)
    # 5 ms -> le 0.005; 75 ms -> le 0.1 (no 0.075 bound here); 250 ms -> le 0.25; over: +Inf
    assert (buckets[0], buckets[4], buckets[5], buckets[-1], total) == (1, 2, 3, 4, 6.0)
    receive_metrics(stats, "shop", gzip.compress(body), "application/json", "gzip")
    assert totals(stats)[1] == 12.0  # delta points add up


def test_cumulative_streams_add_their_increase_and_survive_a_restart():
    stats = ServiceTimes([("shop", "web")])
    bounds = [0.1, 1.0]
    for points in (
        [(100, bounds, [1, 0, 0], 0.05)],
        [(100, bounds, [3, 1, 0], 0.7)],  # +2 fast, +1 slow
        [(200, bounds, [1, 0, 0], 0.02)],  # restarted (a new start time): counted whole
        [(200, bounds, [0, 0, 0], 0.0)],  # a count going down: another restart
    ):
        stats.receive("shop", histogram_request(points))
    buckets, total = totals(stats)
    assert (buckets[4], buckets[7], sum(buckets)) == (4, 1, 5)
    assert total == pytest.approx(0.72)


@pytest.mark.parametrize(
    "request_",
    [
        histogram_request([(1, [0.1], [1, 1], 0.2)], resource={"host.name": "worker.1"}),
        histogram_request([(1, [0.1], [1, 1], 0.2)], resource={"service.name": "shop"}),
        histogram_request([(1, [0.1], [1, 1], 0.2)], name="http.client.request.duration"),
        histogram_request([(1, [0.1], [1, 1], 0.2)], unit="min"),
        histogram_request([(1, [0.1], [1, 1, 1], 0.2)]),  # counts that do not fit the bounds
        histogram_request([(1, [0.1], [1, 1], float("nan"))]),
    ],
)
def test_what_is_not_read(request_):
    stats = ServiceTimes([("shop", "web")])
    assert stats.receive("shop", request_) == 0
    assert stats.samples() == []
