"""The exporter's pure parts: addresses, framing, router lines, ages, buckets, attribution,
and the benchmarks' percentile."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from exporter_helpers import DRAIN_TOKEN, ROOT, write_config

from dynoscaler.benchstats import percentile
from exporter.collectors import Queue, address, sidekiq
from exporter.collectors.redis_shared import server_completed
from exporter.logdrain import BadDrainBody, frames, router_request
from exporter.metrics import DURATION_BUCKETS, Sample, bucket_index, cumulative


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("redis://:s3cret@redis.example.com:6379/1", "redis://redis.example.com:6379/1"),
        ("rediss://user:pw@10.0.0.5:25061", "rediss://10.0.0.5:25061"),
        ("http://guest:guest@127.0.0.1:15672/%2F", "http://127.0.0.1:15672/%2F"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
    ],
)
def test_source_labels_never_carry_credentials(url, label):
    assert address(url) == label


def test_logplex_frames_with_and_without_trailing_newlines():
    body = b"5 hello6 world!\n4 last"
    assert frames(body) == ["hello", "world!", "last"]
    assert frames(b"") == []
    with pytest.raises(BadDrainBody, match="expected an octet count at byte 7"):
        frames(b"2 ab\n  x y")


def test_router_lines_only():
    router = (
        "<158>1 2026-11-23T10:00:00+00:00 host heroku router - at=info method=GET "
        'path="/a b" dyno=worker_web.3 connect=0ms service=7ms status=200'
    )
    assert router_request(router) == ("worker_web", 0.007)
    assert router_request(router.replace("heroku router", "app web.1")) is None
    assert router_request("not syslog") is None


def test_sidekiq_8_milliseconds_and_sidekiq_7_seconds_give_the_same_age():
    now = 1_800_000_000.0
    seconds = json.dumps({"enqueued_at": now - 30.5}).encode()  # Sidekiq 7: float seconds
    milliseconds = json.dumps({"enqueued_at": int((now - 30.5) * 1000)}).encode()  # Sidekiq 8
    assert [sidekiq.age(seconds, now), sidekiq.age(milliseconds, now)] == [30.5, 30.5]
    assert sidekiq.age(None, now) is None


def test_server_wide_counter_only_for_a_single_owner():
    alone = [Queue("shop", "worker", "a", "sidekiq"), Queue("shop", "worker", "b", "sidekiq")]
    assert server_completed(alone, b"12") == [
        Sample("dynoscaler_jobs_completed", ("shop", "worker", "", "sidekiq"), 12)
    ]
    shared = [*alone, Queue("shop", "mailer", "mail", "sidekiq")]
    assert server_completed(shared, b"12") == []


def test_buckets_are_inclusive_and_cumulative():
    assert bucket_index(0.005) == 0
    assert bucket_index(0.0051) == 1
    assert bucket_index(600) == len(DURATION_BUCKETS) - 1
    assert bucket_index(600.1) == len(DURATION_BUCKETS)
    counts = [1] + [0] * (len(DURATION_BUCKETS) - 1) + [2]
    assert cumulative(counts)[0] == ("0.005", 1)
    assert cumulative(counts)[-2:] == [("600.0", 1), ("+Inf", 3)]


def _run_exporter(*args: str, drain_token: str = DRAIN_TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynoscaler", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "DYNOSCALER_DRAIN_TOKEN": drain_token},
    )


def test_bad_settings_and_a_busy_port_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("apps: {shop: {roles: {worker: {queues: [{name: q, backend: kafka, url: x}]}}}}")
    result = _run_exporter("--config", str(bad), "--port", "0")
    assert result.returncode == 2
    assert "kafka' is not one of" in result.stderr
    assert "Traceback" not in result.stderr

    config = write_config(tmp_path, {"shop": {"roles": {"web": {"requests": "router"}}}})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_exporter("--config", str(config), "--port", str(port), "--bind", "127.0.0.1")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_router_roles_without_a_drain_secret_stop_the_exporter_before_it_listens(tmp_path):
    config = write_config(tmp_path, {"shop": {"roles": {"web": {"requests": "router"}}}})
    result = _run_exporter("--config", str(config), "--port", "0", drain_token="")
    assert result.returncode == 2
    assert "DYNOSCALER_DRAIN_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # unsorted: 20, 19, ..., 1
    assert [percentile(values, p) for p in (0, 5, 50, 90, 95, 99, 100)] == [
        1.0, 1.0, 10.0, 18.0, 19.0, 20.0, 20.0,
    ]  # fmt: skip
    assert percentile([7.5], 99) == 7.5
    with pytest.raises(ValueError, match="percentile of no values"):
        percentile([], 50)
