"""The non-Python workers' timing hooks (exporter/hooks/): a real Sidekiq 6 server with the
Ruby middleware, a real BullMQ worker for Node.js with the JavaScript hook. Each writes
the hash exporter.timing writes, field for field, and the exporter reads it. Redis DB 6."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from exporter_helpers import flushed_redis

from dynoscaler.processes import stop
from exporter.collectors import Queue
from exporter.collectors.redis_source import RedisSource
from exporter.timing import (
    BUCKET_FIELDS,
    COUNT_FIELD,
    IN_PROGRESS_FIELD,
    SUM_FIELD,
    TOTAL_BOUNDS,
    TOTAL_INF_FIELD,
    TOTAL_SUM_FIELD,
    timing_key,
    total_field,
)

pytestmark = pytest.mark.timeout(60)
URL = "redis://127.0.0.1:6379/6"  # the enqueue-to-done tests' own database
HOOKS = Path(__file__).resolve().parent.parent / "exporter" / "hooks"
NODE = Path(__file__).resolve().parent / "node"
# Every field exporter.timing writes: what a hook may write, spelled the same.
FIELDS = {
    *BUCKET_FIELDS,
    SUM_FIELD,
    COUNT_FIELD,
    IN_PROGRESS_FIELD,
    TOTAL_SUM_FIELD,
    TOTAL_INF_FIELD,
    *(total_field(bound) for bound in TOTAL_BOUNDS),
}


@pytest.fixture(name="db6")
def redis_db6() -> Iterator[redis.Redis]:
    yield from flushed_redis(URL)


def timing_hash(client: redis.Redis, queue: str) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.hgetall(timing_key(queue)).items()}


def totals(fields: dict[str, float]) -> list[tuple[float, int]]:
    """The enqueue-to-done grid: (upper bound, jobs)."""
    prefix = "total:le:"
    return sorted(
        (float(name.removeprefix(prefix)), int(count))
        for name, count in fields.items()
        if name.startswith(prefix)
    )


def within_deadline(queue: str, backend: str, deadline: float) -> float:
    """What the exporter publishes from the hash: jobs done within the deadline."""
    source = Queue("shop", "worker", queue, backend, deadline=deadline)
    samples = RedisSource(URL, [source], timeout=2).read()
    return next(s.value for s in samples if s.metric == "dynoscaler_jobs_within_deadline")


def wait_for_count(client: redis.Redis, queue: str, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while timing_hash(client, queue).get(COUNT_FIELD, 0) < count:
        assert process.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, f"the worker did not time {count} jobs"
        time.sleep(0.1)


SIDEKIQ_JOBS = """
require "sidekiq"
require "{hook}"

Sidekiq.configure_server do |config|
  config.server_middleware {{ |chain| chain.add Dynoscaler::SidekiqTiming }}
end

class QuickJob
  include Sidekiq::Worker

  def perform(fail)
    sleep(0.05)
    raise "fails on purpose" if fail
  end
end
"""


@pytest.mark.skipif(shutil.which("sidekiq") is None, reason="Debian's ruby-sidekiq is missing")
def test_sidekiq_jobs_are_timed_from_their_enqueued_at(tmp_path, db6):
    hook = HOOKS / "sidekiq" / "dynoscaler_timing.rb"
    (tmp_path / "jobs.rb").write_text(SIDEKIQ_JOBS.format(hook=hook))
    now = time.time()
    jobs = [
        (False, now),  # as Sidekiq 6's client writes it: epoch seconds
        (False, round((now - 100) * 1000)),  # Sidekiq 8's milliseconds, 100 s ago
        (True, now - 200),  # fails: timed too
    ]
    db6.sadd("queues", "qos")
    for number, (fail, enqueued_at) in enumerate(jobs):
        job = {"class": "QuickJob", "args": [fail], "queue": "qos", "retry": False}
        job |= {"jid": f"{number:024x}", "enqueued_at": enqueued_at, "created_at": enqueued_at}
        db6.lpush("queue:qos", json.dumps(job))
    command = ["sidekiq", "-r", "./jobs.rb", "-q", "qos", "-c", "2", "-t", "1"]
    env = {**os.environ, "REDIS_URL": URL}
    log = open(tmp_path / "sidekiq.log", "ab")  # noqa: SIM115 (closed with the process)
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        wait_for_count(db6, "qos", 3, server)
    finally:
        stop(server)
        log.close()
    fields = timing_hash(db6, "qos")
    assert set(fields) <= FIELDS, set(fields) - FIELDS
    assert fields[IN_PROGRESS_FIELD] == 0
    assert sum(fields.get(f, 0) for f in BUCKET_FIELDS) == 3
    assert 3 * 0.05 <= fields[SUM_FIELD] < 30
    grid = totals(fields)
    assert sum(n for bound, n in grid if bound <= 30) == 1
    assert sum(n for bound, n in grid if 100 <= bound <= 130) == 1
    assert sum(n for bound, n in grid if 200 <= bound <= 230) == 1
    assert 300 <= fields[TOTAL_SUM_FIELD] < 390
    assert within_deadline("qos", "sidekiq", 60) == 1


# Four jobs on queue `qos` through the real BullMQ worker with the hook: one new, one
# created 100 s ago, one 200 s ago that fails, one delayed 300 ms (ready when due).
BULLMQ_SCENARIO = """
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');
const { timeJobs } = require(process.argv[1]);

(async () => {
  const url = process.argv[2];
  const connection = new IORedis(url, { maxRetriesPerRequest: null });
  const queue = new Queue('qos', { connection });
  const now = Date.now();
  await queue.add('new', { fail: false });
  await queue.add('old', { fail: false }, { timestamp: now - 100000 });
  await queue.add('older', { fail: true }, { timestamp: now - 200000 });
  await queue.add('delayed', { fail: false }, { delay: 300 });
  const working = new IORedis(url, { maxRetriesPerRequest: null });
  const worker = new Worker('qos', async (job) => {
    await new Promise((done) => setTimeout(done, 50));
    if (job.data.fail) throw new Error('fails on purpose');
  }, { connection: working, concurrency: 2 });
  timeJobs(worker, connection);
  const finished = async () => Object.values(await queue.getJobCounts('completed', 'failed'));
  while ((await finished()).reduce((a, b) => a + b) < 4) {
    await new Promise((done) => setTimeout(done, 20));
  }
  await worker.close(true);
  await working.quit();
  await queue.close();
  await connection.quit();  // after the hook's writes: one connection keeps their order
})();
"""


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE / "node_modules" / "bullmq").exists(),
    reason="no Node.js BullMQ: ./scripts/setup installs it into tests/node",
)
def test_bullmq_jobs_are_timed_from_their_timestamp(db6):
    hook = HOOKS / "bullmq" / "dynoscaler-timing.cjs"
    command = ["node", "-e", BULLMQ_SCENARIO, "--", str(hook), URL]
    done = subprocess.run(command, cwd=NODE, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    fields = timing_hash(db6, "qos")
    assert set(fields) <= FIELDS, set(fields) - FIELDS
    assert fields[COUNT_FIELD] == 4 and fields[IN_PROGRESS_FIELD] == 0
    assert sum(fields.get(f, 0) for f in BUCKET_FIELDS) == 4
    assert 4 * 0.05 <= fields[SUM_FIELD] < 30
    grid = totals(fields)
    assert sum(n for bound, n in grid if bound <= 30) == 2  # the new and the delayed one
    assert sum(n for bound, n in grid if 100 <= bound <= 130) == 1
    assert sum(n for bound, n in grid if 200 <= bound <= 230) == 1  # failed: timed too
    assert within_deadline("qos", "bullmq", 60) == 2
