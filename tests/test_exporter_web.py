"""exporter.web: the WSGI and ASGI request timers, and the exporter reading their hashes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import flask
import pytest
import redis
from exporter_helpers import exporter, flushed_redis, labels, source_ups, write_config
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.bench_web import GOAL_SECONDS, measure
from exporter.collectors.web_timing import WebTimingSource
from exporter.timing import BUCKET_FIELDS, TOTAL_SUM_FIELD
from exporter.web import (
    QUEUE,
    SERVICE,
    SKEWED_FIELD,
    SUM_FIELD,
    AsgiTimer,
    RequestTimes,
    WsgiTimer,
    request_start,
    web_timing_key,
)

pytestmark = pytest.mark.timeout(60)

REDIS_DB14 = "redis://127.0.0.1:6379/14"  # this module's database
KEY = web_timing_key("web")


@pytest.fixture(name="db14")
def redis_db14() -> Iterator[redis.Redis]:
    yield from flushed_redis(REDIS_DB14)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1795946401123", 1795946401.123),  # Heroku's router: milliseconds
        ("t=1795946401123456", 1795946401.123456),  # microseconds
        ("t=1795946401.5", 1795946401.5),  # seconds with a fraction (nginx's $msec)
        (b"1795946401123", 1795946401.123),  # as an ASGI header value
        ("1795946401", 1795946401.0),  # whole seconds
    ],
)
def test_x_request_start_forms(header, seconds):
    assert request_start(header) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("header", [None, "", "t=", "soon", "t=12ms", "1e12", "t=1.2.3"])
def test_what_is_not_a_request_start(header):
    assert request_start(header) is None


def hash_of(client: redis.Redis) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.hgetall(KEY).items()}


def flask_app(times: RequestTimes) -> flask.Flask:
    app = flask.Flask("shop")

    @app.get("/")
    def index() -> str:
        time.sleep(0.03)
        return "ok"

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the app's own error")

    app.wsgi_app = WsgiTimer(app.wsgi_app, times=times)  # the one line a Flask app adds
    return app


def stamp(seconds_ago: float) -> dict[str, str]:
    return {"X-Request-Start": str(round((time.time() - seconds_ago) * 1000))}


def test_wsgi_requests_record_queue_and_service_time_in_one_hash(db14):
    times = RequestTimes(db14, role="web", flush_seconds=3600)
    client = flask_app(times).test_client()
    assert client.get("/", headers=stamp(0.04)).status_code == 200  # 40 ms in the queue
    assert client.get("/", headers={"X-Request-Start": f"t={time.time() * 1e6:.0f}"}).data == b"ok"
    assert client.get("/").status_code == 200  # no header: service time only
    assert client.get("/", headers=stamp(-5)).status_code == 200  # a router clock 5 s ahead
    assert client.get("/", headers=stamp(7200)).status_code == 200  # absurd: two hours
    assert client.get("/boom", headers=stamp(0.2)).status_code == 500  # still timed
    assert hash_of(db14) == {}  # nothing written before the flush
    assert times.flush()
    fields = hash_of(db14)
    queue = [fields.get(QUEUE + f, 0) for f in BUCKET_FIELDS]
    service = [fields.get(SERVICE + f, 0) for f in BUCKET_FIELDS]
    assert sum(service) == 6 and fields[SKEWED_FIELD] == 2
    assert sum(queue) == 3  # 40 ms, about 0, 200 ms
    assert queue[BUCKET_FIELDS.index("le:0.05")] == 1
    assert queue[BUCKET_FIELDS.index("le:0.25")] == 1
    assert 0.24 <= fields[QUEUE + SUM_FIELD] < 0.5
    assert sum(service[BUCKET_FIELDS.index("le:0.05") :]) == 5  # the 30 ms sleeps
    assert fields[SERVICE + SUM_FIELD] >= 5 * 0.03


def test_a_dead_redis_fails_no_request_and_loses_no_count(db14):
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    times = RequestTimes(dead, role="web", flush_seconds=3600)
    client = flask_app(times).test_client()
    assert [client.get("/", headers=stamp(0.01)).status_code for _ in range(3)] == [200] * 3
    assert times.flush() is False  # kept for the next flush
    times.client = db14
    assert times.flush()
    fields = hash_of(db14)
    assert sum(fields.get(QUEUE + f, 0) for f in BUCKET_FIELDS) == 3


def test_the_flusher_thread_writes_without_a_call(db14):
    times = RequestTimes(db14, role="web", flush_seconds=0.05)
    # The request's own count, not a bucket: a stamp in whole milliseconds 10 ms ago
    # (on the 0.01 bound) was 9.5-10.5 ms, so le:0.01 or le:0.025 by the rounding.
    flask_app(times).test_client().get("/", headers=stamp(0.01))
    deadline = time.monotonic() + 5
    while not hash_of(db14) and time.monotonic() < deadline:
        time.sleep(0.02)
    fields = hash_of(db14)
    assert sum(fields.get(QUEUE + f, 0) for f in BUCKET_FIELDS) == 1
    assert sum(fields.get(SERVICE + f, 0) for f in BUCKET_FIELDS) == 1
    assert 0.0095 <= fields[QUEUE + SUM_FIELD] < 5


def test_asgi_requests_are_timed_until_the_response_is_sent(db14):
    async def app(scope, receive, send):
        await asyncio.sleep(0.02)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    times = RequestTimes(db14, role="web", flush_seconds=3600)
    timed = AsgiTimer(app, times=times)
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    def scope(headers):
        return {"type": "http", "method": "GET", "path": "/", "headers": headers}

    async def requests_():
        start = str(round((time.time() - 0.06) * 1000)).encode()
        await timed(scope([(b"x-request-start", start)]), receive, send)
        await timed(scope([]), receive, send)
        await timed({"type": "lifespan"}, receive, send)  # not a request: not timed

    asyncio.run(requests_())
    assert times.flush()
    fields = hash_of(db14)
    assert fields[QUEUE + "le:0.1"] == 1
    assert sum(fields.get(SERVICE + f, 0) for f in BUCKET_FIELDS) == 2
    assert fields[SERVICE + SUM_FIELD] >= 0.04
    assert sum(1 for m in sent if m["type"] == "http.response.body") == 3


def test_the_exporter_publishes_the_hashes_per_app_and_role(tmp_path, db14):
    times = RequestTimes(db14, role="web", flush_seconds=3600)
    client = flask_app(times).test_client()
    for _ in range(4):
        client.get("/", headers=stamp(0.02))
    client.get("/", headers=stamp(-1))
    times.flush()
    db14.set(web_timing_key("api"), "not a hash")
    middleware = {"middleware": {"url": REDIS_DB14}}
    config = write_config(tmp_path, {"shop": {"roles": {"web": middleware, "api": middleware}}})
    with exporter(config) as running:
        series = running.scrape()
    web = labels(app="shop", role="web")
    assert series[("dynoscaler_web_queue_seconds_count", web)] == 4
    assert (
        series[("dynoscaler_web_queue_seconds_bucket", labels(app="shop", role="web", le="0.025"))]
        == 4
    )
    assert series[("dynoscaler_web_service_seconds_count", web)] == 5
    assert series[("dynoscaler_web_queue_skewed_total", web)] == 1
    assert series[("dynoscaler_policy_target_queue_seconds", web)] == 0.1
    ups = source_ups(series)
    assert ups[("redis://127.0.0.1:6379/14", "web_timing", "shop", "web")] == 1
    assert ups[("redis://127.0.0.1:6379/14", "web_timing", "shop", "api")] == 0  # its key is bad
    assert not [
        key for key in series if key[0].startswith("dynoscaler_web_") and ("role", "api") in key[1]
    ]


def test_response_times_give_the_web_roles_share_within_the_deadline(db14):
    """Queue plus service time, router to response, on exporter.timing's grid: the exporter
    folds it with the role's target_deadline (1 s) as it does a job's enqueue-to-done."""
    times = RequestTimes(db14, role="web", flush_seconds=3600)
    times.record(100.0, 100.4, 100.5)  # 0.5 s: within
    times.record(100.0, 100.9, 101.0)  # 1.0 s, the deadline itself: within (le)
    times.record(100.0, 100.2, 101.6)  # 0.2 s waiting, 1.4 s served: late
    times.record(100.0, 101.9, 102.0)  # 1.9 s waiting: late
    times.record(None, 100.0, 100.1)  # no X-Request-Start: no response time
    times.record(100.0, 99.0, 99.1)  # skewed: no response time
    assert times.flush()
    fields = hash_of(db14)
    assert fields[TOTAL_SUM_FIELD] == pytest.approx(0.5 + 1.0 + 1.6 + 2.0)
    assert sum(v for k, v in fields.items() if k.startswith("total:le:")) == 4
    source = WebTimingSource(REDIS_DB14, [("shop", "web", 1.0)], timeout=2)
    samples = {s.metric: s for s in source.read()}
    assert samples["dynoscaler_jobs_within_deadline"].value == 2
    assert samples["dynoscaler_jobs_within_deadline"].labels == ("shop", "web", "")
    histogram = samples["dynoscaler_job_total_seconds"]
    assert 1.0 in histogram.bounds and sum(histogram.buckets) == 4
    assert sum(histogram.buckets[: histogram.bounds.index(1.0) + 1]) == 2


def test_bench_web_measures_what_the_timers_add():
    rows = measure(REDIS_DB14, 3000)
    assert [name for name, _, _ in rows] == ["WSGI", "ASGI"]
    for _, median, p99 in rows:
        assert 0 < median < GOAL_SECONDS  # the median: a loaded machine moves the p99
        assert p99 > 0
