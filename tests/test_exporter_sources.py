"""A dead, hung or restarted source is a metric, never a failed scrape, and recovers alone."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pika
import pytest
import redis
import requests
from exporter_helpers import (
    RABBITMQ_API,
    REDIS_DB1,
    exporter,
    hung_tcp_port,  # noqa: F401 (the hung_server fixture)
    labels,
    redis_db1,  # noqa: F401 (the db1 fixture)
    source_ups,
    wait_for,
    write_config,
)

from dynoscaler.processes import free_port
from exporter.collectors import Feed, PartialRead, Queue
from exporter.collectors.redis_source import RedisSource

pytestmark = pytest.mark.timeout(120)


def source(url: str, backend: str) -> frozenset[tuple[str, str]]:
    return labels(source=url, backend=backend)


def queue_labels(name: str, backend: str) -> frozenset[tuple[str, str]]:
    return labels(app="shop", role="worker", queue=name, backend=backend)


def worker(url: str, backend: str) -> frozenset[tuple[str, str]]:
    """source_up labels of shop/worker's queues on `url`."""
    return labels(source=url, backend=backend, app="shop", role="worker")


def test_dead_and_hung_redis_are_down_and_a_dead_one_recovers(tmp_path, db1, hung_server):
    dead_port = free_port()
    dead_url = f"redis://127.0.0.1:{dead_port}/0"
    hung_url = f"redis://127.0.0.1:{hung_server}/0"
    db1.rpush("jobs", "a", "b")
    config = write_config(
        tmp_path,
        {"shop": {"roles": {"worker": {"queues": [
            {"name": "jobs", "backend": "redis_list", "url": REDIS_DB1},
            {"name": "jobs", "backend": "redis_list", "url": dead_url},
            {"name": "jobs", "backend": "rq", "url": hung_url},
        ]}}}},
        source_timeout=0.5,
    )  # fmt: skip
    up = ("dynoscaler_source_up", worker(dead_url, "redis_list"))
    with exporter(config) as running:
        for _ in range(3):
            started = time.monotonic()
            series = running.scrape()
            assert time.monotonic() - started < 2.0  # the hung source costs its time-out only
            assert source_ups(series) == {
                (REDIS_DB1, "redis_list", "shop", "worker"): 1,
                (dead_url, "redis_list", "shop", "worker"): 0,
                (hung_url, "rq", "shop", "worker"): 0,
            }
        duration = series[("dynoscaler_source_scrape_duration_seconds", source(hung_url, "rq"))]
        assert 0.5 <= duration < 1.0
        depths = {
            dict(key[1])["queue"]: value
            for key, value in series.items()
            if key[0] == "dynoscaler_queue_depth"
        }
        assert depths == {"jobs": 2}  # only the live source's queue
        assert len(running.log_lines(f"source {dead_url} (redis_list) is down")) == 1
        assert len(running.log_lines(f"source {hung_url} (rq) is down")) == 1

        # A Redis comes up on the dead port: the next scrapes see it, without a restart.
        server = subprocess.Popen(
            ["redis-server", "--port", str(dead_port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _pings(dead_port))
            redis.Redis(port=dead_port).rpush("jobs", "x", "y", "z")
            series = wait_for(lambda: (s := running.scrape())[up] and s)
        finally:
            server.terminate()
            server.wait(timeout=10)
        key = ("dynoscaler_queue_depth", frozenset(
            {"app": "shop", "role": "worker", "queue": "jobs", "backend": "redis_list"}.items()
        ))  # fmt: skip
        assert key in series
        assert len(running.log_lines(f"source {dead_url} (redis_list) is up again")) == 1
        assert len(running.log_lines(f"source {dead_url} (redis_list) is down")) == 1


def test_a_source_is_up_or_down_for_exactly_the_roles_it_feeds(tmp_path, db1):
    """One Redis feeding two roles: up for both; a dead one feeding two others: down for both."""
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    config = write_config(
        tmp_path,
        {
            "shop": {"roles": {
                "worker": {"queues": [{"name": "jobs", "backend": "redis_list", "url": REDIS_DB1}]},
                "mailer": {"queues": [{"name": "mail", "backend": "sidekiq", "url": REDIS_DB1}]},
                "reports": {"queues": [{"name": "reports", "backend": "rq", "url": dead_url}]},
            }},
            "billing": {"roles": {
                "worker": {"queues": [
                    {"name": "invoices", "backend": "redis_list", "url": dead_url},
                    {"name": "receipts", "backend": "redis_list", "url": dead_url},
                ]},
            }},
        },
        source_timeout=0.5,
    )  # fmt: skip
    with exporter(config) as running:
        series = running.scrape()
    assert source_ups(series) == {
        (REDIS_DB1, "redis_list", "shop", "worker"): 1,
        (REDIS_DB1, "sidekiq", "shop", "mailer"): 1,
        (dead_url, "rq", "shop", "reports"): 0,
        (dead_url, "redis_list", "billing", "worker"): 0,
    }
    # One read per source: its duration is per source and backend, not per role.
    durations = {
        (dict(found)["source"], dict(found)["backend"])
        for name, found in series
        if name == "dynoscaler_source_scrape_duration_seconds"
    }
    assert durations == {
        (REDIS_DB1, "redis_list"),
        (REDIS_DB1, "sidekiq"),
        (dead_url, "rq"),
        (dead_url, "redis_list"),
    }
    assert len(running.log_lines(f"source {dead_url} (redis_list, rq) is down")) == 1


def _pings(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_connect_timeout=0.5).ping()
    except redis.ConnectionError:
        return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def test_rabbitmq_stopped_then_started(tmp_path, db1):
    name = f"stopped-{uuid.uuid4().hex[:8]}"
    db1.rpush("jobs", "a")
    config = write_config(
        tmp_path,
        {"shop": {"roles": {"worker": {"queues": [
            {"name": "jobs", "backend": "redis_list", "url": REDIS_DB1},
            {"name": name, "backend": "rabbitmq", "url": RABBITMQ_API},
        ]}}}},
        source_timeout=2,
    )  # fmt: skip
    rabbit = ("dynoscaler_source_up", worker("http://127.0.0.1:15672/%2F", "rabbitmq"))
    live = ("dynoscaler_source_up", worker(REDIS_DB1, "redis_list"))
    with exporter(config) as running:
        assert running.scrape()[rabbit] == 1
        try:
            _rabbitmqctl("stop_app")
            series = running.scrape()
            assert series[rabbit] == 0
            assert series[live] == 1
        finally:
            _rabbitmqctl("start_app")
        wait_for(lambda: running.scrape()[rabbit] == 1, timeout=60, interval=1)
        assert len(running.log_lines("source http://127.0.0.1:15672/%2F (rabbitmq) is down")) == 1
        assert len(running.log_lines("(rabbitmq) is up again")) == 1
    # RabbitMQ accepts clients again (other tests need it).
    pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1")).close()


def test_healthz_and_unknown_paths(tmp_path):
    config = write_config(tmp_path, {"shop": {"roles": {"web": {"requests": "router"}}}})
    with exporter(config) as running:
        assert requests.get(f"{running.url}/healthz", timeout=5).text == "ok\n"
        missing = requests.get(f"{running.url}/nope", timeout=5)
        assert missing.status_code == 404


def test_a_job_without_a_readable_time_only_loses_its_age(db1):
    queues = [
        Queue("shop", "worker", "default", "sidekiq"),
        Queue("shop", "worker", "reports", "rq"),
    ]
    db1.lpush("queue:default", b"not json")
    db1.rpush("rq:queue:reports", "expired-job-id")  # its rq:job hash is gone
    samples = RedisSource(REDIS_DB1, queues, timeout=2).read()
    names = {(s.metric, s.labels[2]): s.value for s in samples}
    assert names[("dynoscaler_queue_depth", "default")] == 1
    assert names[("dynoscaler_queue_depth", "reports")] == 1
    assert ("dynoscaler_queue_oldest_age_seconds", "default") not in names
    assert ("dynoscaler_queue_oldest_age_seconds", "reports") not in names


def test_a_bad_key_costs_only_its_own_queue(db1):
    """A key of the wrong type leaves out its queue and holds its role only."""
    queues = [
        Queue("shop", "worker", "reports", "rq"),
        Queue("shop", "worker", "broken", "rq"),
        Queue("shop", "mailer", "mail", "redis_list"),
    ]
    db1.rpush("mail", "a", "b")
    db1.set("rq:queue:broken", "a string, not a list")
    with pytest.raises(PartialRead) as caught:
        RedisSource(REDIS_DB1, queues, timeout=2).read()
    (error,) = caught.value.errors
    assert error.message.startswith("Lua script on rq:queue:broken: WRONGTYPE")
    assert error.message.endswith("queue broken of shop/worker left out")
    assert error.feeds == {Feed("rq", "shop", "worker")}
    depths = {s.labels[2]: s.value for s in caught.value.samples if s.metric.endswith("depth")}
    assert depths == {"reports": 0, "mail": 2}


def test_bad_keys_and_entries_through_the_exporter(tmp_path, db1):
    """One Redis, three roles: a wrong-type key and malformed entries cost only what they feed.

    Before, one failed command set source_up 0 for every role on the server.
    """
    now = time.time()
    db1.rpush("mail", "a", "b")
    db1.set("rq:queue:broken", "a string, not a list")
    db1.lpush("queue:default", json.dumps({"queue": "default", "enqueued_at": now - 5}))
    identity = "worker.1:12:abc"
    db1.sadd("processes", identity)
    db1.hset(identity, mapping={"busy": 2, "beat": now})
    db1.hset(
        f"{identity}:work",
        mapping={
            "tid0": json.dumps({"queue": "default", "run_at": now}),
            "tid1": json.dumps({"queue": {"a": 1}}),  # malformed: names no queue
        },
    )
    db1.zadd("schedule", {"garbage": now - 10})  # a due entry that is no job
    db1.set("dynoscaler:timing:mail", "not a hash")
    config = write_config(
        tmp_path,
        {"shop": {"roles": {
            "worker": {"queues": [{"name": "broken", "backend": "rq", "url": REDIS_DB1}]},
            "mailer": {"queues": [{"name": "mail", "backend": "redis_list", "url": REDIS_DB1}]},
            "web": {"queues": [{"name": "default", "backend": "sidekiq", "url": REDIS_DB1}]},
        }}},
    )  # fmt: skip
    errors = {
        backend: ("dynoscaler_source_read_errors_total", source(REDIS_DB1, backend))
        for backend in ("rq", "redis_list", "sidekiq")
    }
    with exporter(config) as running:
        running.scrape()
        series = running.scrape()
        assert source_ups(series) == {
            (REDIS_DB1, "rq", "shop", "worker"): 0,
            (REDIS_DB1, "redis_list", "shop", "mailer"): 1,
            (REDIS_DB1, "sidekiq", "shop", "web"): 1,
        }
        queues = {
            (name, dict(found)["queue"]): value
            for (name, found), value in series.items()
            if name.startswith("dynoscaler_queue_")
        }
        # The job was enqueued 5 s before `now`; the exporter's start takes what it takes.
        age = queues.pop(("dynoscaler_queue_oldest_age_seconds", "default"))
        assert 5 - 1 <= age <= 5 + (time.time() - now) + 1
        # the well-formed busy entry began at `now`
        running_for = queues.pop(("dynoscaler_queue_oldest_in_progress_age_seconds", "default"))
        assert 0 <= running_for <= time.time() - now + 1
        assert queues == {
            ("dynoscaler_queue_depth", "mail"): 2,
            ("dynoscaler_queue_depth", "default"): 1,
            ("dynoscaler_queue_in_progress", "default"): 1,
            ("dynoscaler_queue_dead", ""): 0,  # Sidekiq's dead set, server-wide
        }
        # Counted on every read: one key for rq, the hash for redis_list, two entries for Sidekiq.
        assert [series[errors[b]] for b in ("rq", "redis_list", "sidekiq")] == [2, 2, 4]
        for key in ("rq:queue:broken", "dynoscaler:timing:mail", f"{identity}:work", "schedule"):
            assert len(running.log_lines(key)) == 1, key
        assert not running.log_lines("is down")

        db1.delete("rq:queue:broken")
        series = running.scrape()
        assert series[("dynoscaler_source_up", worker(REDIS_DB1, "rq"))] == 1
        assert series[("dynoscaler_queue_depth", queue_labels("broken", "rq"))] == 0
        assert len(running.log_lines("cleared: Lua script on rq:queue:broken")) == 1
