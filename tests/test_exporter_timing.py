"""exporter.timing records job durations into Redis; the exporter publishes the histogram."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

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
REDIS_DB13 = "redis://127.0.0.1:6379/13"  # the enqueue-to-done test's own database


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


@pytest.fixture
def db13() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_DB13)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_enqueue_to_done_times_give_the_share_within_the_deadline(tmp_path, db13):
    timer = JobTimer(db13, queue="orders")
    now = time.time()
    with timer.job(enqueued_at=now - 6.5):  # within the 7 s deadline
        pass
    with timer.job(enqueued_at=now - 7.3):  # on the grid's 8 s bucket: late, not interpolated
        pass
    # A naive datetime is UTC, as RQ writes it; 100 s late.
    with timer.job(enqueued_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=100)):
        pass
    with timer.job(enqueued_at=None):  # no enqueue time: a duration only
        pass
    timer.record(0.1, total=7.0)  # exactly the deadline: within (le is inclusive)
    timer.record(0.1, total=-3.0)  # a clock behind the enqueuer's: within
    config = write_config(
        tmp_path,
        {"shop": {"roles": {"worker": {"target_deadline": 7, "queues": [
            {"name": "orders", "backend": "redis_list", "url": REDIS_DB13},
        ]}}}},
    )  # fmt: skip
    with exporter(config) as running:
        series = running.scrape()

    key = labels(app="shop", role="worker", queue="orders")
    assert series[("dynoscaler_job_duration_seconds_count", key)] == 6
    assert series[("dynoscaler_job_total_seconds_count", key)] == 5
    assert series[("dynoscaler_jobs_within_deadline_total", key)] == 3

    def bucket(le: str) -> float:
        return series[("dynoscaler_job_total_seconds_bucket", key | {("le", le)})]

    assert bucket("7.0") == 3  # the deadline is a bound of its own
    assert bucket("5.0") == 1 and bucket("10.0") == 4 and bucket("120.0") == 5
    buckets = [k for k in series if k[0] == "dynoscaler_job_total_seconds_bucket"]
    assert len(buckets) == len(DURATION_BUCKETS) + 2
    assert 6.5 + 7.3 + 100 + 7 < series[("dynoscaler_job_total_seconds_sum", key)] < 121.5
