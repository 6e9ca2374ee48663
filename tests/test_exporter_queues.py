"""Queue metrics from the real exporter, with queues filled the way each real client does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import exporter_helpers
import pika
import pytest
import redis
from celery import Celery
from exporter_helpers import (
    RABBITMQ_API,
    REDIS_DB1,
    exporter,
    queue,
    redis_db1,  # noqa: F401 (the db1 fixture)
    source_ups,
    wait_for,
    write_config,
)
from rq import Queue as RQQueue
from rq.job import Job

from exporter.collectors import Queue
from exporter.collectors.redis_source import RedisSource

pytestmark = pytest.mark.timeout(90)


def sidekiq_job(queue_name: str, enqueued_at: float) -> str:
    """A job as Sidekiq's client (7.x) serialises it."""
    return json.dumps(
        {
            "retry": True,
            "queue": queue_name,
            "class": "HardWorker",
            "args": [1, "two"],
            "jid": uuid.uuid4().hex[:24],
            "created_at": enqueued_at,
            "enqueued_at": enqueued_at,
        }
    )


def fill_sidekiq(client: redis.Redis, now: float) -> None:
    # Sidekiq::Client LPUSHes; the oldest job is the tail.
    client.sadd("queues", "default")
    client.lpush("queue:default", sidekiq_job("default", now - 75.0))
    client.lpush("queue:default", sidekiq_job("default", now - 10.0))
    client.lpush("queue:default", sidekiq_job("default", now - 1.0))
    # One live process running two jobs of `default` and one of `mailers`; one dead process.
    identity = "worker.1:12:abc"
    client.sadd("processes", identity, "worker.2:13:dead")
    client.hset(identity, mapping={"busy": 3, "beat": now, "quiet": "false"})
    work = {
        f"tid{i}": json.dumps({"queue": name, "payload": sidekiq_job(name, now), "run_at": now})
        for i, name in enumerate(["default", "default", "mailers"])
    }
    client.hset(f"{identity}:work", mapping=work)
    client.hset("worker.2:13:dead:work", "tidx", json.dumps({"queue": "default", "run_at": now}))
    client.set("stat:processed", 1234)


def fill_resque(client: redis.Redis) -> None:
    for arg in range(4):
        client.rpush("resque:queue:twilio", json.dumps({"class": "CallJob", "args": [arg]}))
    client.sadd("resque:workers", "host:101:twilio", "host:102:twilio")
    client.set(
        "resque:worker:host:101:twilio",
        json.dumps({"queue": "twilio", "run_at": "2026-11-23 10:00:00 UTC", "payload": {}}),
    )
    client.set("resque:stat:processed", 77)


def fill_rq(client: redis.Redis, now: float) -> None:
    reports = RQQueue("reports", connection=client)
    reports.enqueue("time.sleep", 6)  # the job the worker below keeps in progress
    jobs = [reports.enqueue("math.sqrt", n) for n in (4, 9, 16)]
    # Backdate the oldest waiting job so its age is known.
    job = Job.fetch(jobs[0].id, connection=client)
    job.enqueued_at = datetime.fromtimestamp(now - 120.0, UTC).replace(tzinfo=None)
    job.save()


def fill_celery(client: redis.Redis) -> None:
    app = Celery("shop", broker=REDIS_DB1)
    app.send_task("tasks.add", args=(1, 2), queue="celery")
    app.send_task("tasks.add", args=(3, 4), queue="celery")
    app.send_task("tasks.add", args=(5, 6), queue="celery", priority=5)  # a priority list
    app.close()


def test_redis_backends_read_in_one_scrape(tmp_path, db1):
    now = time.time()
    fill_sidekiq(db1, now)
    fill_resque(db1)
    fill_celery(db1)
    db1.rpush("emails", "a", "b", "c", "d", "e")
    fill_rq(db1, now)
    worker = subprocess.Popen(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--max-jobs", "1"]
        + ["--url", REDIS_DB1, "reports"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: db1.zcard("rq:wip:reports") == 1)
        config = write_config(
            tmp_path,
            {
                "shop": {
                    "roles": {
                        "worker": {
                            "queues": [
                                {"name": "default", "backend": "sidekiq", "url": REDIS_DB1},
                                {"name": "mailers", "backend": "sidekiq", "url": REDIS_DB1},
                                {"name": "reports", "backend": "rq", "url": REDIS_DB1},
                                {"name": "emails", "backend": "redis_list", "url": REDIS_DB1},
                            ]
                        }
                    }
                },
                "dialer": {
                    "roles": {
                        "dialer": {
                            "queues": [
                                {"name": "twilio", "backend": "resque", "url": REDIS_DB1},
                                {"name": "celery", "backend": "celery", "url": REDIS_DB1},
                            ]
                        }
                    }
                },
            },
        )
        with exporter(config) as running:
            series = running.scrape()
            scraped_at = time.time()
    finally:
        worker.terminate()
        worker.wait(timeout=10)

    def value(metric: str, *key: str) -> float:
        return series[(metric, queue(*key))]

    worker_q = ("shop", "worker")
    assert value("dynoscaler_queue_depth", *worker_q, "default", "sidekiq") == 3
    assert value("dynoscaler_queue_depth", *worker_q, "mailers", "sidekiq") == 0
    assert value("dynoscaler_queue_in_progress", *worker_q, "default", "sidekiq") == 2
    assert value("dynoscaler_queue_in_progress", *worker_q, "mailers", "sidekiq") == 1
    sidekiq_age = value("dynoscaler_queue_oldest_age_seconds", *worker_q, "default", "sidekiq")
    assert 75.0 <= sidekiq_age <= 75.0 + (scraped_at - now)
    assert value("dynoscaler_queue_oldest_age_seconds", *worker_q, "mailers", "sidekiq") == 0
    assert value("dynoscaler_jobs_completed_total", *worker_q, "", "sidekiq") == 1234

    assert value("dynoscaler_queue_depth", *worker_q, "reports", "rq") == 3
    assert value("dynoscaler_queue_in_progress", *worker_q, "reports", "rq") == 1
    rq_age = value("dynoscaler_queue_oldest_age_seconds", *worker_q, "reports", "rq")
    assert 120.0 <= rq_age <= 120.0 + (scraped_at - now)

    assert value("dynoscaler_queue_depth", *worker_q, "emails", "redis_list") == 5

    dialer = ("dialer", "dialer")
    assert value("dynoscaler_queue_depth", *dialer, "twilio", "resque") == 4
    assert value("dynoscaler_queue_in_progress", *dialer, "twilio", "resque") == 1
    assert value("dynoscaler_jobs_completed_total", *dialer, "", "resque") == 77
    assert value("dynoscaler_queue_depth", *dialer, "celery", "celery") == 3
    # Neither Resque nor Celery messages carry an enqueue time: no age is invented.
    aged = {dict(k[1])["queue"] for k in series if k[0] == "dynoscaler_queue_oldest_age_seconds"}
    assert aged == {"default", "mailers", "reports"}
    # One Redis, one read: up once per backend and app/role it feeds.
    assert source_ups(series) == {
        (REDIS_DB1, "sidekiq", "shop", "worker"): 1,
        (REDIS_DB1, "rq", "shop", "worker"): 1,
        (REDIS_DB1, "redis_list", "shop", "worker"): 1,
        (REDIS_DB1, "resque", "dialer", "dialer"): 1,
        (REDIS_DB1, "celery", "dialer", "dialer"): 1,
    }


@pytest.fixture
def rabbit_queue():
    """A fresh RabbitMQ queue on a pika channel; deleted afterwards."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = connection.channel()
    name = f"orders-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(name)
    try:
        yield channel, name
    finally:
        channel.queue_delete(name)
        connection.close()


def test_rabbitmq_queue_through_management_api(tmp_path, rabbit_queue):
    channel, name = rabbit_queue
    published_at = int(time.time()) - 30
    for number in range(5):
        channel.basic_publish(
            "", name, str(number).encode(), pika.BasicProperties(timestamp=published_at)
        )
    done = wait_for(lambda: channel.basic_get(name, auto_ack=False)[0])
    channel.basic_ack(done.delivery_tag)
    assert channel.basic_get(name, auto_ack=False)[0]  # held, unacknowledged: in progress
    config = write_config(
        tmp_path,
        {"shop": {"roles": {"consumer": {"queues": [
            {"name": name, "backend": "rabbitmq", "url": RABBITMQ_API},
            {"name": f"{name}-absent", "backend": "rabbitmq", "url": RABBITMQ_API},
        ]}}}},
    )  # fmt: skip
    labels = queue("shop", "consumer", name, "rabbitmq")
    expected = {"dynoscaler_queue_depth": 3, "dynoscaler_queue_in_progress": 1}
    expected["dynoscaler_jobs_completed_total"] = 1
    with exporter(config) as running:
        # The management API refreshes its statistics every few seconds.
        series = wait_for(
            lambda: (
                (s := running.scrape())
                and all(s.get((metric, labels)) == value for metric, value in expected.items())
                and s
            ),
            timeout=30,
            interval=1,
        )
    age = series[("dynoscaler_queue_oldest_age_seconds", labels)]
    assert 30 <= age <= time.time() - published_at
    assert source_ups(series) == {("http://127.0.0.1:15672/%2F", "rabbitmq", "shop", "consumer"): 1}
    # A queue that does not exist yet gives no series rather than a made-up zero.
    assert not [key for key in series if ("queue", f"{name}-absent") in key[1]]


def enqueue_under_rq_key_prefix(jobs: int) -> str:
    """Enqueue `jobs` jobs on RQ's queue "reports" in db1 from a child process run with
    RQ_KEY_PREFIX=shop-rq (rq reads it at import); what it printed: len(queue)."""
    enqueue = (
        "from redis import Redis; from rq import Queue;"
        f"q = Queue('reports', connection=Redis.from_url('{REDIS_DB1}'));"
        f"[q.enqueue('math.sqrt', n) for n in range({jobs})]; print(len(q))"
    )
    done = subprocess.run(
        [sys.executable, "-c", enqueue],
        env={**os.environ, "RQ_KEY_PREFIX": "shop-rq"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_custom_key_prefixes(db1):
    """RQ's RQ_KEY_PREFIX, kombu's global_keyprefix and a Resque namespace, read as each names
    its keys (the queue's `prefix`); the same queue names under the default prefixes differ."""
    url = exporter_helpers.REDIS_DB1
    assert enqueue_under_rq_key_prefix(4) == "4" and db1.llen("shop-rq:queue:reports") == 4
    RQQueue("reports", connection=db1).enqueue("math.sqrt", 1)  # the default prefix: another queue

    app = Celery("shop", broker=url)
    app.conf.broker_transport_options = {"global_keyprefix": "shop:"}
    for number in range(3):
        app.send_task("tasks.add", args=(number, 1), queue="celery")
    app.close()

    # Resque.redis.namespace = "resque:shop": keys "resque:shop:queue:NAME" and so on.
    for arg in range(2):
        db1.rpush("resque:shop:queue:twilio", json.dumps({"class": "CallJob", "args": [arg]}))
    db1.sadd("resque:shop:workers", "host:101:twilio")
    db1.set("resque:shop:worker:host:101:twilio", json.dumps({"queue": "twilio", "payload": {}}))
    db1.set("resque:shop:stat:processed", 5)
    db1.rpush("resque:queue:twilio", json.dumps({"class": "CallJob", "args": []}))  # default ns
    db1.set("resque:stat:processed", 2)

    queues = [
        Queue("shop", "worker", "reports", "rq", prefix="shop-rq"),
        Queue("shop", "worker", "celery", "celery", prefix="shop:"),
        Queue("shop", "worker", "twilio", "resque", prefix="resque:shop"),
    ]
    samples = RedisSource(url, queues, timeout=2).read()
    figures = {(s.metric, s.labels[2]): s.value for s in samples}
    assert figures[("dynoscaler_queue_depth", "reports")] == 4
    assert figures[("dynoscaler_queue_in_progress", "reports")] == 0
    assert figures[("dynoscaler_queue_depth", "celery")] == 3
    assert figures[("dynoscaler_queue_depth", "twilio")] == 2
    assert figures[("dynoscaler_queue_in_progress", "twilio")] == 1
    assert figures[("dynoscaler_jobs_completed", "")] == 5

    default = [
        Queue("shop", "worker", "twilio", "resque"),
        Queue("shop", "worker", "reports", "rq"),
    ]
    samples = RedisSource(url, default, timeout=2).read()
    figures = {(s.metric, s.labels[2]): s.value for s in samples}
    assert figures[("dynoscaler_queue_depth", "twilio")] == 1
    assert figures[("dynoscaler_queue_depth", "reports")] == 1
    assert figures[("dynoscaler_jobs_completed", "")] == 2


def test_a_queue_prefix_in_the_settings_reaches_the_exporter(tmp_path, db1):
    """An RQ queue under RQ_KEY_PREFIX, enqueued by the real rq library: the running
    exporter reads its depth where the settings' `prefix` says."""
    enqueued = enqueue_under_rq_key_prefix(6)
    RQQueue("reports", connection=db1).enqueue("math.sqrt", 1)  # the default prefix: not it
    entry = {"name": "reports", "backend": "rq", "url": REDIS_DB1, "prefix": "shop-rq"}
    apps = {"shop": {"roles": {"worker": {"queues": [entry]}}}}
    with exporter(write_config(tmp_path, apps)) as running:
        series = running.scrape()
    assert series[("dynoscaler_queue_depth", queue("shop", "worker", "reports", "rq"))] == int(
        enqueued
    )
    assert int(enqueued) == 6
