"""RQ read as RQ sees it: queues filled, worked and crashed by the real rq (3.x), figures
compared with rq's own (`len(queue)`, `queue.jobs`, `StartedJobRegistry`,
`ScheduledJobRegistry`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import exporter_helpers
import pytest
import redis
from exporter_helpers import (
    exporter,
    queue_figures,
    redis_db1,  # noqa: F401 (the db1 fixture)
    wait_for,
    worker_queues,
)
from rq import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from exporter.collectors import Queue as Watched
from exporter.collectors.redis_source import RedisSource

pytestmark = pytest.mark.timeout(120)
RQ_DB10 = "redis://127.0.0.1:6379/10"  # the walk-bound test's own database


def _oldest_waiting(rq_queue: Queue, at: float) -> float:
    """The oldest waiting job's age by rq: the earliest enqueued_at of the queue's jobs."""
    return at - min(job.enqueued_at.timestamp() for job in rq_queue.jobs)


def _worker(*queues: str, burst: bool = False, scheduler: bool = False) -> subprocess.Popen:
    """A real `rq worker` in its own process group (so that a crash takes its work horse too)."""
    command = [sys.executable, "-m", "rq.cli", "worker", "--url", exporter_helpers.REDIS_DB1]
    command += ["--burst"] * burst + ["--with-scheduler"] * scheduler + list(queues)
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _crash(worker: subprocess.Popen) -> None:
    """SIGKILL the worker and its work horse: nothing cleans up after them."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def test_enqueue_at_front_keeps_the_oldest_job_s_age(tmp_path, db1):
    """RQ LPUSHes at-front jobs: the head is the newest job, not the oldest."""
    reports = Queue("reports", connection=db1)
    reports.enqueue("math.sqrt", 4)
    time.sleep(2.0)
    reports.enqueue("math.sqrt", 9)
    reports.enqueue("math.sqrt", 16, at_front=True)
    reports.enqueue("math.sqrt", 25, at_front=True)  # the head now
    with exporter(worker_queues(tmp_path, "rq", "reports")) as running:
        found = queue_figures(running.scrape(), "reports", "rq")
        scraped_at = time.time()
    assert found["depth"] == len(reports) == 4
    assert found["oldest_age_seconds"] == pytest.approx(
        _oldest_waiting(reports, scraped_at), abs=1.0
    )
    assert found["oldest_age_seconds"] >= 2.0


def test_an_expired_job_at_the_head_does_not_hide_the_oldest_age(tmp_path, db1):
    """A job enqueued with ttl=1 keeps its id in the list after its hash expires."""
    reports = Queue("reports", connection=db1)
    gone = reports.enqueue("math.sqrt", 4, ttl=1)
    reports.enqueue("math.sqrt", 9)
    wait_for(lambda: not db1.exists(gone.key), timeout=10)
    time.sleep(1.0)
    with exporter(worker_queues(tmp_path, "rq", "reports")) as running:
        found = queue_figures(running.scrape(), "reports", "rq")
        scraped_at = time.time()
    assert found["depth"] == len(reports) == 2  # rq's count keeps the stale id too
    assert len(reports.jobs) == 1  # rq skips it
    assert found["oldest_age_seconds"] == pytest.approx(
        _oldest_waiting(reports, scraped_at), abs=1.0
    )


def test_a_crashed_worker_s_job_is_not_in_progress(tmp_path, db1):
    """A started-registry entry past its expiry score is abandoned (rq's cleanup fails it)."""
    reports = Queue("reports", connection=db1)
    registry = StartedJobRegistry(queue=reports)
    crashed_job = reports.enqueue("time.sleep", 60)
    crashed = _worker("reports")
    try:
        wait_for(lambda: db1.zcard(registry.key) == 1)
    finally:
        _crash(crashed)
    live_worker = _worker("reports")
    try:
        reports.enqueue("time.sleep", 60)
        wait_for(lambda: db1.zcard(registry.key) == 2)
        # Time passes: the dead worker's entry reaches its expiry (its heartbeat stopped).
        (entry,) = [m for m in db1.zrange(registry.key, 0, -1) if crashed_job.id in m.decode()]
        db1.zadd(registry.key, {entry: time.time() - 5}, xx=True)
        with exporter(worker_queues(tmp_path, "rq", "reports")) as running:
            found = queue_figures(running.scrape(), "reports", "rq")
        assert found["in_progress"] == 1
        assert len(registry) == 1  # rq's count, after its cleanup took the abandoned entry
        assert crashed_job.id in reports.failed_job_registry
    finally:
        _crash(live_worker)


def test_due_scheduled_jobs_count_while_no_worker_runs_the_scheduler(tmp_path, db1):
    reports = Queue("reports", connection=db1)
    scheduled = ScheduledJobRegistry(queue=reports)
    reports.enqueue("math.sqrt", 4)
    reports.enqueue_in(timedelta(seconds=1), "math.sqrt", 9)
    reports.enqueue_in(timedelta(seconds=1), "math.sqrt", 16)
    reports.enqueue_in(timedelta(hours=1), "math.sqrt", 25)  # not due: no waiting work yet
    time.sleep(3.0)
    due = scheduled.get_jobs_to_schedule()
    assert len(due) == 2 and len(scheduled) == 3
    with exporter(worker_queues(tmp_path, "rq", "reports")) as running:
        found = queue_figures(running.scrape(), "reports", "rq")
        scraped_at = time.time()
        first_due = min(scheduled.get_scheduled_time(job_id).timestamp() for job_id in due)
        assert found["depth"] == len(reports) + len(due) == 3
        assert found["oldest_age_seconds"] == pytest.approx(
            max(scraped_at - first_due, _oldest_waiting(reports, scraped_at)), abs=1.0
        )

        # A worker with the scheduler moves the due jobs into the queue and runs them all.
        worker = _worker("reports", burst=True, scheduler=True)
        assert worker.wait(timeout=60) == 0
        found = queue_figures(running.scrape(), "reports", "rq")
    assert len(reports) == 0 and len(scheduled) == 1
    assert found == {"depth": 0, "in_progress": 0, "oldest_age_seconds": 0}


def test_the_oldest_of_many_at_front_jobs(tmp_path, db1):
    """The walk from the head passes every at-front job (here 250, in three LRANGE chunks)."""
    reports = Queue("reports", connection=db1)
    reports.enqueue("math.sqrt", 1)
    time.sleep(1.5)
    for number in range(250):
        reports.enqueue("math.sqrt", number, at_front=True)
    client: redis.Redis = db1
    assert client.llen("rq:queue:reports") == 251
    with exporter(worker_queues(tmp_path, "rq", "reports")) as running:
        found = queue_figures(running.scrape(), "reports", "rq")
        scraped_at = time.time()
    assert found["oldest_age_seconds"] == pytest.approx(
        _oldest_waiting(reports, scraped_at), abs=1.0
    )


def test_the_age_walk_stops_after_1000_at_front_jobs():
    """Behind more at-front jobs than the walk reads (a hash each), the age is the oldest of
    the 1,000 read from the head: a lower bound, bought with a bounded read."""
    client = redis.Redis.from_url(RQ_DB10)
    client.flushdb()
    try:
        reports = Queue("reports", connection=client)
        reports.enqueue("math.sqrt", 1)
        time.sleep(1.5)
        at_front = reports.enqueue_many(
            [Queue.prepare_data("math.sqrt", (n,), at_front=True) for n in range(1001)]
        )
        assert len(reports) == 1002
        samples = RedisSource(RQ_DB10, [Watched("shop", "worker", "reports", "rq")], 5).read()
        scraped_at = time.time()
        oldest = _oldest_waiting(reports, scraped_at)
    finally:
        client.flushdb()
        client.close()
    age = next(s.value for s in samples if s.metric == "dynoscaler_queue_oldest_age_seconds")
    # the head is the last at-front job; the 1,000th from it is the second one enqueued
    assert age == pytest.approx(scraped_at - at_front[1].enqueued_at.timestamp(), abs=0.5)
    assert age < oldest - 1.0
