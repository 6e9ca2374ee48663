"""The oldest job in progress's age from Sidekiq's busy entries (run_at), which
scale_down_when_busy: wait_long reads (issue 18, item 3). Redis DB 12."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
from exporter_helpers import flushed_redis

from exporter.collectors import Queue
from exporter.collectors.redis_source import RedisSource

URL = "redis://127.0.0.1:6379/12"
AGE = "dynoscaler_queue_oldest_in_progress_age_seconds"


@pytest.fixture
def db12() -> Iterator[redis.Redis]:
    yield from flushed_redis(URL)


def test_oldest_running_job_per_queue_from_run_at(db12) -> None:
    now = time.time()
    identity = "worker.1:7:abc"
    db12.sadd("processes", identity)
    db12.hset(identity, mapping={"busy": 4, "beat": now})
    work = {
        "t1": {"queue": "default", "run_at": int(now - 95)},  # Sidekiq 7: seconds
        "t2": {"queue": "default", "run_at": int(now - 10)},
        "t3": {"queue": "mail", "run_at": int((now - 40) * 1000)},  # Sidekiq 8: milliseconds
        "t4": {"queue": "mail", "run_at": "2026-12-03T10:00:00Z"},  # no number: no start
    }
    db12.hset(f"{identity}:work", mapping={k: json.dumps(v) for k, v in work.items()})
    queues = [Queue("shop", "worker", name, "sidekiq") for name in ("default", "mail", "idle")]
    before = time.time()
    samples = RedisSource(URL, queues, timeout=2).read()
    after = time.time()
    ages = {s.labels[2]: s.value for s in samples if s.metric == AGE}
    busy = {s.labels[2]: s.value for s in samples if s.metric == "dynoscaler_queue_in_progress"}
    assert busy == {"default": 2, "mail": 2, "idle": 0}
    assert int(now - 95) + ages["default"] == pytest.approx(
        (before + after) / 2, abs=1 + after - before
    )
    assert ages["mail"] == pytest.approx(40 + (before + after) / 2 - now, abs=1 + after - before)
    assert "idle" not in ages  # nothing runs: no age
