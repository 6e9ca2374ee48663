"""exporter.timing records job durations into Redis; the exporter publishes the histogram."""

from __future__ import annotations

import time

import pytest
import redis
from exporter_helpers import (
    REDIS_DB1,
    exporter,
    labels,
    queue,
    redis_db1,  # noqa: F401 (the db1 fixture)
    write_config,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from dynoscaler.processes import free_port
from exporter.metrics import DURATION_BUCKETS
from exporter.timing import JobTimer

pytestmark = pytest.mark.timeout(60)


def test_timed_jobs_become_a_histogram(tmp_path, db1):
    db1.rpush("emails", "waiting")
    timer = JobTimer(db1, queue="emails")
    timer.record(0.005)  # on a bucket's bound: counted in that bucket (le is inclusive)
    timer.record(0.2)
    timer.record(700.0)  # above the largest bound: only +Inf

    @timer
    def failing_job() -> None:
        time.sleep(0.012)
        raise ValueError("job failed")

    with pytest.raises(ValueError, match="job failed"):
        failing_job()  # a failed job is timed too, and its error reaches the worker

    config = write_config(
        tmp_path,
        {"shop": {"roles": {"worker": {"queues": [
            {"name": "emails", "backend": "redis_list", "url": REDIS_DB1},
        ]}}}},
    )  # fmt: skip
    with exporter(config) as running:
        with timer:
            during = running.scrape()
        after = running.scrape()

    role_queue = queue("shop", "worker", "emails", "redis_list")
    assert during[("dynoscaler_queue_in_progress", role_queue)] == 1
    assert after[("dynoscaler_queue_in_progress", role_queue)] == 0
    assert after[("dynoscaler_jobs_completed_total", role_queue)] == 5
    assert after[("dynoscaler_queue_depth", role_queue)] == 1

    def bucket(le: str) -> float:
        key = labels(app="shop", role="worker", queue="emails", le=le)
        return after[("dynoscaler_job_duration_seconds_bucket", key)]

    # The failed job (12 ms) and the `with` block (a few ms at most) land at or below 0.25 s.
    assert bucket("0.005") >= 1
    assert bucket("0.1") == 3
    assert bucket("0.25") == 4
    assert bucket("600.0") == 4
    assert bucket("+Inf") == 5
    series = labels(app="shop", role="worker", queue="emails")
    assert after[("dynoscaler_job_duration_seconds_count", series)] == 5
    total = after[("dynoscaler_job_duration_seconds_sum", series)]
    assert 700.2 + 0.005 + 0.012 <= total < 700.2 + 0.005 + 0.012 + 0.2
    buckets = [k for k in after if k[0] == "dynoscaler_job_duration_seconds_bucket"]
    assert len(buckets) == len(DURATION_BUCKETS) + 1


def test_a_dead_redis_never_fails_the_job(caplog):
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    timer = JobTimer(client, queue="q")
    with timer:
        result = 42
    assert result == 42
    assert "cannot record to dynoscaler:timing:q" in caplog.text
