"""BullMQ read as BullMQ sees it: queues filled and worked by the real library (BullMQ for
Node.js, installed by scripts/setup into tests/node, and its Python port, which runs
BullMQ's own Lua scripts on the same Redis layout), figures compared with its own counts
(`getJobCounts`) and jobs (`timestamp` + `delay`). Redis DB 12."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bullmq import Job, Worker
from bullmq import Queue as BullQueue
from exporter_helpers import flushed_redis, wait_for

from exporter import bench_backends
from exporter.collectors import Feed, PartialRead, Queue
from exporter.collectors.redis_source import RedisSource

pytestmark = pytest.mark.timeout(60)

URL = "redis://127.0.0.1:6379/12"


@pytest.fixture(name="db12")
def redis_db12() -> Iterator[redis.Redis]:
    yield from flushed_redis(URL)


def _figures(*queues: Queue) -> dict[tuple[str, str], float]:
    samples = RedisSource(URL, queues, timeout=2).read()
    return {(s.metric.removeprefix("dynoscaler_"), s.labels[2]): s.value for s in samples}


def test_jobs_in_progress_completed_and_failed_with_a_real_worker(db12):
    async def scenario() -> None:
        mail = BullQueue("mail", {"connection": URL})
        for number in range(5):
            await mail.add("send", {"n": number})
        release = asyncio.Event()

        async def process(job: Job, token: str) -> None:
            await release.wait()
            if job.data["n"] == 4:
                raise RuntimeError("fails on purpose")  # no attempts left: `failed`

        options = {"connection": URL, "concurrency": 2, "metrics": {"maxDataPoints": 10}}
        worker = Worker("mail", process, options)
        queue = Queue("shop", "worker", "mail", "bullmq")
        await asyncio.wait_for(_until(lambda: mail.getJobCountByTypes("active"), 2), 10)
        found = _figures(queue)
        counts = await mail.getJobCounts("wait", "active")
        assert (
            (found[("queue_depth", "mail")], found[("queue_in_progress", "mail")])
            == (
                counts["wait"],
                counts["active"],
            )
            == (3, 2)
        )
        release.set()
        await asyncio.wait_for(
            _until(lambda: mail.getJobCountByTypes("completed", "failed"), 5), 10
        )
        done = _figures(queue)
        completed, failed = await mail.getCompletedCount(), await mail.getFailedCount()
        assert (completed, failed) == (4, 1)
        assert done[("jobs_completed", "mail")] == completed + failed  # every finished job
        assert done[("queue_dead", "mail")] == failed
        assert done[("queue_depth", "mail")] == done[("queue_in_progress", "mail")] == 0
        assert done[("queue_oldest_age_seconds", "mail")] == 0
        await worker.close()
        await mail.close()

    asyncio.run(scenario())


async def _until(count, expected: int) -> None:
    while await count() < expected:
        await asyncio.sleep(0.05)


_CRASHING_WORKER = textwrap.dedent(
    f"""
    import asyncio
    from bullmq import Worker

    async def process(job, token):
        print("started", flush=True)
        await asyncio.sleep(60)

    async def main():
        Worker("mail", process, {{"connection": "{URL}", "lockDuration": 1000}})
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_a_stalled_job_of_a_dead_worker_is_waiting_not_in_progress(db12):
    """A worker killed mid-job leaves its job in `active`; once its lock expires BullMQ's
    stalled check moves it back to wait, so it is waiting work (aged from its add)."""

    async def add() -> Job:
        mail = BullQueue("mail", {"connection": URL})
        job = await mail.add("send", {})
        await mail.close()
        return job

    job = asyncio.run(add())
    worker = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WORKER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout.readline().strip() == "started"
        live = _figures(Queue("shop", "worker", "mail", "bullmq"))
        assert (live[("queue_depth", "mail")], live[("queue_in_progress", "mail")]) == (0, 1)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    wait_for(lambda: not db12.exists(f"bull:mail:{job.id}:lock"), timeout=5, interval=0.1)
    found = _figures(Queue("shop", "worker", "mail", "bullmq"))
    assert db12.lrange("bull:mail:active", 0, -1) == [job.id.encode()]  # BullMQ: still active
    assert (found[("queue_depth", "mail")], found[("queue_in_progress", "mail")]) == (1, 0)
    expected = time.time() - job.timestamp / 1000
    assert found[("queue_oldest_age_seconds", "mail")] == pytest.approx(expected, abs=1.0)


def test_a_custom_prefix(db12):
    async def scenario() -> None:
        mail = BullQueue("mail", {"connection": URL, "prefix": "shop-bull"})
        await mail.add("send", {})
        await mail.add("send", {})
        await mail.close()

    asyncio.run(scenario())
    prefixed = _figures(Queue("shop", "worker", "mail", "bullmq", prefix="shop-bull"))
    default = _figures(Queue("shop", "worker", "mail", "bullmq"))
    assert (prefixed[("queue_depth", "mail")], default[("queue_depth", "mail")]) == (2, 0)


def test_a_bad_key_costs_only_its_own_queue(db12):
    async def scenario() -> None:
        mail = BullQueue("mail", {"connection": URL})
        await mail.add("send", {})
        await mail.close()

    asyncio.run(scenario())
    db12.set("bull:broken:active", "a string, not a list")
    db12.hset("bull:mail:garbage", "timestamp", "not a number")  # no age, no error
    db12.lpush("bull:mail:wait", "garbage")
    queues = [Queue("shop", "worker", "mail", "bullmq"), Queue("shop", "cron", "broken", "bullmq")]
    with pytest.raises(PartialRead) as caught:
        RedisSource(URL, queues, timeout=2).read()
    (error,) = caught.value.errors
    assert error.message.startswith("Lua script on bull:broken:: WRONGTYPE")
    assert error.message.endswith("queue broken of shop/cron left out")
    assert error.feeds == {Feed("bullmq", "shop", "cron")}
    figures = {(s.metric, s.labels[2]): s.value for s in caught.value.samples}
    assert figures[("dynoscaler_queue_depth", "mail")] == 2
    assert ("dynoscaler_queue_oldest_age_seconds", "mail") in figures


NODE_SCENARIO = Path(__file__).parent / "node" / "bullmq_scenario.mjs"


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_SCENARIO.parent / "node_modules/bullmq").is_dir(),
    reason="no BullMQ for Node.js: ./scripts/setup installs it (npm, tests/node)",
)
def test_the_node_library(db12):
    """BullMQ itself (Node.js): the same figures as its own counts at each step: FIFO,
    LIFO, prioritized, due and future delayed jobs; the queue paused; a worker running
    two; all done but one failed."""
    scenario = subprocess.Popen(
        ["node", str(NODE_SCENARIO), URL, "mail"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    queue = Queue("shop", "worker", "mail", "bullmq")

    def step(name: str) -> tuple[dict, dict[tuple[str, str], float]]:
        said = json.loads(scenario.stdout.readline())
        assert said["step"] == name
        return said, _figures(queue)

    def next_step() -> None:
        scenario.stdin.write("next\n")
        scenario.stdin.flush()

    try:
        said, found = step("waiting")
        counts = said["counts"]
        assert (counts["wait"], counts["prioritized"], counts["delayed"]) == (2, 2, 2)
        assert found[("queue_depth", "mail")] == 2 + 2 + 1  # and the due delayed job
        assert found[("queue_in_progress", "mail")] == 0
        oldest = time.time() - said["oldest_ready"] / 1000
        assert found[("queue_oldest_age_seconds", "mail")] == pytest.approx(oldest, abs=1.0)
        assert oldest >= 1.4  # the first job, not the LIFO one at the tail
        assert ("jobs_completed", "mail") not in found  # no worker with `metrics` yet
        next_step()

        depth = found[("queue_depth", "mail")]
        said, found = step("paused")
        assert found[("queue_depth", "mail")] == depth
        next_step()

        said, found = step("busy")
        counts = said["counts"]
        assert found[("queue_in_progress", "mail")] == counts["active"] == 2
        assert found[("queue_depth", "mail")] == counts["wait"] + counts["prioritized"] == 3
        next_step()

        said, found = step("done")
        counts = said["counts"]
        assert (counts["completed"], counts["failed"]) == (4, 1)
        assert found[("jobs_completed", "mail")] == 5
        assert found[("queue_dead", "mail")] == 1
        assert found[("queue_depth", "mail")] == found[("queue_in_progress", "mail")] == 0
        next_step()
        assert scenario.wait(timeout=10) == 0
    finally:
        scenario.kill()
        scenario.wait()


def test_bench_backends_reads_what_it_filled(db12, capsys):
    """A small `dynoscaler bench backends`: each case's depth is what it filled as waiting."""
    parser = argparse.ArgumentParser()
    bench_backends.add_arguments(parser)
    arguments = ["--depths", "10", "--scrapes", "2", "--redis", URL]
    assert bench_backends.run(parser.parse_args(arguments)) == 0
    rows = [line.rsplit(None, 4) for line in capsys.readouterr().out.splitlines()[3:]]
    assert [(row[0], row[-1]) for row in rows] == [
        ("bullmq fifo", "10"),
        ("bullmq lifo", "10"),
        ("bullmq prioritized", "10"),
        ("bullmq delayed", "5"),  # every other one due
        ("dramatiq", "15"),  # the list and the due half of the delay queue
        ("rq at_front", "10"),
    ]
