"""RabbitMQ queues as their consumers see them: timestamps in milliseconds, and Celery
(which acknowledges a task when it starts) through the management API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pika
import pytest
from celery import Celery
from exporter_helpers import RABBITMQ_API, exporter, queue, source_ups, wait_for, write_config

pytestmark = pytest.mark.timeout(120)

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
TASKS = f"""
import time

from celery import Celery

app = Celery("shop", broker="{BROKER}")


@app.task(name="tasks.nap")
def nap(seconds):
    time.sleep(seconds)
"""


@pytest.fixture
def queue_name():
    """A fresh RabbitMQ queue name; the queue is deleted afterwards."""
    name = f"orders-{uuid.uuid4().hex[:8]}"
    yield name
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    connection.channel().queue_delete(name)
    connection.close()


def test_timestamps_in_milliseconds(tmp_path, queue_name):
    """Many clients set the AMQP timestamp in milliseconds; read as seconds it gave an age of 0."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = connection.channel()
    channel.queue_declare(queue_name)
    published_at = time.time() - 30
    properties = pika.BasicProperties(timestamp=int(published_at * 1000))
    channel.basic_publish("", queue_name, b"job", properties)
    connection.close()
    config = write_config(
        tmp_path,
        {"shop": {"roles": {"consumer": {"queues": [
            {"name": queue_name, "backend": "rabbitmq", "url": RABBITMQ_API},
        ]}}}},
    )  # fmt: skip
    age = ("dynoscaler_queue_oldest_age_seconds", queue("shop", "consumer", queue_name, "rabbitmq"))
    with exporter(config) as running:
        series = wait_for(lambda: (s := running.scrape()).get(age) and s, timeout=30, interval=1)
        scraped_at = time.time()
    assert series[age] == pytest.approx(scraped_at - published_at, abs=1.0)


def test_celery_on_rabbitmq_counts_prefetched_tasks_as_waiting(tmp_path, queue_name):
    """Celery acks a task when it starts: unacknowledged messages are prefetched, not running.

    One worker process with a prefetch of 4 runs one task, holds four, and three
    wait in the broker: 7 tasks are waiting. The exporter publishes no
    in-progress or completed figure for it (RabbitMQ's would be 4 and 1).
    """
    (tmp_path / "tasks.py").write_text(TASKS)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", queue_name, "-c", "1"]
        + ["--prefetch-multiplier", "4", "--without-gossip", "--without-mingle"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    app = Celery("shop", broker=BROKER)
    try:
        inspect = app.control.inspect(timeout=2)
        wait_for(lambda: inspect.ping(), timeout=60, interval=1)
        for _ in range(8):
            app.send_task("tasks.nap", args=(60,), queue=queue_name)
        config = write_config(
            tmp_path,
            {"shop": {"roles": {"worker": {"queues": [
                {"name": queue_name, "backend": "celery", "url": RABBITMQ_API},
            ]}}}},
        )  # fmt: skip
        labels = queue("shop", "worker", queue_name, "celery")
        with exporter(config) as running:
            # The management API refreshes its statistics every few seconds.
            series = wait_for(
                lambda: (s := running.scrape()).get(("dynoscaler_queue_depth", labels)) == 7 and s,
                timeout=45,
                interval=1,
            )
        # Celery's own view: one task running, four reserved (prefetched, not started).
        (active,) = inspect.active().values()
        (reserved,) = inspect.reserved().values()
        assert (len(active), len(reserved)) == (1, 4)
        assert series[("dynoscaler_queue_depth", labels)] == 8 - len(active)
        for metric in ("dynoscaler_queue_in_progress", "dynoscaler_jobs_completed_total"):
            assert (metric, labels) not in series
        assert ("dynoscaler_queue_oldest_age_seconds", labels) not in series  # no send time
        assert source_ups(series) == {("http://127.0.0.1:15672/%2F", "celery", "shop", "worker"): 1}
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        app.close()
