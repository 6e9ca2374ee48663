"""exporter.timing records job durations into Redis; the exporter publishes the histogram."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
import redis
import rq
from celery import Celery
from celery.contrib.testing.worker import start_worker
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from exporter_helpers import (
    REDIS_DB1,
    exporter,
    flushed_redis,
    labels,
    queue,
    redis_db1,  # noqa: F401 (the db1 fixture)
    write_config,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from dynoscaler.processes import free_port
from exporter import timing_celery
from exporter.metrics import DURATION_BUCKETS
from exporter.timing import JobTimer, timing_key
from exporter.timing_dramatiq import TimingMiddleware

pytestmark = pytest.mark.timeout(60)
REDIS_DB6 = "redis://127.0.0.1:6379/6"  # the enqueue-to-done tests' own database


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
def db6() -> Iterator[redis.Redis]:
    yield from flushed_redis(REDIS_DB6)


def test_enqueue_to_done_times_give_the_share_within_the_deadline(tmp_path, db6):
    timer = JobTimer(db6, queue="orders")
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
            {"name": "orders", "backend": "redis_list", "url": REDIS_DB6},
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


def enqueue_to_done(client: redis.Redis, queue: str) -> list[tuple[float, int]]:
    """The timing hash's enqueue-to-done grid: (upper bound, jobs)."""
    fields = client.hgetall(timing_key(queue))
    return [
        (float(name.removeprefix(b"total:le:")), int(count))
        for name, count in fields.items()
        if name.startswith(b"total:le:")
    ]


def test_rq_jobs_are_timed_from_their_enqueued_at(db6):
    queue = rq.Queue("qos-rq", connection=db6)
    queue.enqueue(time.sleep, 0.01)
    late = queue.enqueue(time.sleep, 0.01)
    late.enqueued_at = datetime.now(UTC) - timedelta(seconds=100)
    late.save()
    worker = "exporter.timing_rq.TimedWorker"  # a real `rq worker`, each job in a work horse
    command = [sys.executable, "-m", "rq.cli", "worker", "-w", worker, "--url", REDIS_DB6]
    subprocess.run([*command, "--burst", "qos-rq"], check=True, capture_output=True, timeout=30)
    grid = enqueue_to_done(db6, "qos-rq")
    assert sum(n for bound, n in grid if bound <= 10) == 1
    assert sum(n for bound, n in grid if 100 <= bound <= 120) == 1
    assert db6.hget(timing_key("qos-rq"), "count") == b"2"


def test_dramatiq_messages_are_timed_from_their_timestamp(db6):
    broker = RedisBroker(url=REDIS_DB6, namespace="qos-dramatiq")
    broker.add_middleware(TimingMiddleware(db6))

    @dramatiq.actor(broker=broker, queue_name="qos", max_retries=0)
    def work(fail: bool) -> None:
        if fail:
            raise ValueError("the job failed")

    broker.enqueue(work.message(False))
    old = work.message(True)
    broker.enqueue(old.copy(message_timestamp=old.message_timestamp - 100_000))
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        broker.join("qos", timeout=20_000)
        worker.join()
    finally:
        worker.stop()
        broker.close()
    grid = enqueue_to_done(db6, "qos")
    assert sum(n for bound, n in grid if bound <= 10) == 1
    assert sum(n for bound, n in grid if 100 <= bound <= 120) == 1  # failed, timed too


def test_celery_tasks_are_timed_from_the_header_stamped_at_publish(db6):
    app = Celery("qos", broker=REDIS_DB6)
    disconnect = timing_celery.connect(db6)

    @app.task(name="qos.add")
    def add(a: int, b: int) -> int:
        return a + b

    try:
        add.apply_async((1, 2), queue="qos-celery")  # stamped now by the publish handler
        old = time.time() - 100  # a stamp already set is kept: one sent 100 s ago
        add.apply_async((1, 2), queue="qos-celery", headers={timing_celery.HEADER: old})
        with start_worker(app, pool="solo", perform_ping_check=False, queues=["qos-celery"]):
            deadline = time.monotonic() + 20
            while int(db6.hget(timing_key("qos-celery"), "count") or 0) < 2:
                assert time.monotonic() < deadline, "the worker did not run both tasks"
                time.sleep(0.1)
    finally:
        disconnect()
    grid = enqueue_to_done(db6, "qos-celery")
    assert sum(n for bound, n in grid if bound <= 10) == 1
    assert sum(n for bound, n in grid if 100 <= bound <= 120) == 1
