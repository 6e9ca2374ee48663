"""Sidekiq read as Sidekiq sees it: a real Sidekiq 6 (Debian's ruby-sidekiq) and its API.

The jobs are pushed, run, failed and retried by the real Ruby client and server;
Sidekiq's own API (`Sidekiq::Queue#size`, `#latency`, `Sidekiq::Workers`, the
scheduled and retry sets) run in Ruby is what the exporter's figures are
compared with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

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

from dynoscaler.processes import stop
from exporter.collectors import PartialRead, Queue
from exporter.collectors.redis_source import RedisSource

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("sidekiq") is None or shutil.which("ruby") is None,
        reason="no sidekiq: Debian's ruby-sidekiq is not installed (./scripts/setup installs it)",
    ),
]

JOBS = """
require "sidekiq"

class SlowJob
  include Sidekiq::Worker

  def perform(seconds)
    sleep(seconds)
  end
end

class FailJob
  include Sidekiq::Worker
  sidekiq_options retry: 5
  sidekiq_retry_in { |_count, _error| 2 }

  def perform
    raise "fails on purpose"
  end
end
"""

# Sidekiq's API on the queues named in ARGV, as JSON.
ORACLE = """
require "sidekiq/api"
require "json"

now = Time.now.to_f
busy = Hash.new(0)
Sidekiq::Workers.new.each { |_process, _thread, work| busy[work["queue"]] += 1 }
due = Hash.new(0)
earliest = {}
[Sidekiq::ScheduledSet.new, Sidekiq::RetrySet.new].each do |set|
  set.each do |entry|
    next if entry.score > now
    due[entry.queue] += 1
    earliest[entry.queue] = [earliest[entry.queue] || entry.score, entry.score].min
  end
end
figures = ARGV.to_h do |name|
  queue = Sidekiq::Queue.new(name)
  [name, {
    "size" => queue.size, "latency" => queue.latency, "busy" => busy[name],
    "due" => due[name], "due_for" => earliest[name] ? now - earliest[name] : nil,
  }]
end
puts JSON.dump({"at" => now, "queues" => figures})
"""


class Sidekiq:
    """Ruby's Sidekiq on the tests' Redis: the client, the API, and server processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "jobs.rb").write_text(JOBS)
        (directory / "oracle.rb").write_text(ORACLE)
        self.env = {**os.environ, "REDIS_URL": exporter_helpers.REDIS_DB1}

    def ruby(self, code: str) -> None:
        """Run `code` with the jobs loaded (e.g. SlowJob.perform_async(1))."""
        self._run(["ruby", "-r", "./jobs.rb", "-e", code])

    def api(self, *queues: str) -> dict:
        return json.loads(self._run(["ruby", "oracle.rb", *queues]))

    def start(self, *queues: str, concurrency: int = 3) -> subprocess.Popen[bytes]:
        command = ["sidekiq", "-r", "./jobs.rb", "-c", str(concurrency), "-t", "1"]
        for name in queues:
            command += ["-q", name]
        log = open(self.directory / "sidekiq.log", "ab")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(
            command, cwd=self.directory, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def _run(self, command: list[str]) -> str:
        done = subprocess.run(
            command, cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def _expected(api: dict, name: str, scraped_at: float) -> dict[str, float]:
    """What Sidekiq's API says, due scheduled jobs and retries counted as waiting work."""
    figures, later = api["queues"][name], scraped_at - api["at"]
    depth = figures["size"] + figures["due"]
    ages = [figures["latency"] + later if figures["size"] else 0.0]
    if figures["due_for"] is not None:
        ages.append(figures["due_for"] + later)
    return {"depth": depth, "in_progress": figures["busy"], "oldest_age_seconds": max(ages)}


def _assert_close(found: dict, expected: dict) -> None:
    assert found["depth"] == expected["depth"]
    assert found["in_progress"] == expected["in_progress"]
    assert found["oldest_age_seconds"] == pytest.approx(expected["oldest_age_seconds"], abs=1.0)


def test_sidekiq_6_jobs_in_progress_and_the_oldest_past_a_garbage_tail(tmp_path, db1):
    """Sidekiq 6 keeps busy jobs in `<identity>:workers` (7 and 8: `:work`)."""
    sidekiq = Sidekiq(tmp_path)
    server = sidekiq.start("default", "mailers", concurrency=3)
    try:
        # Three jobs fill the three threads; two more wait in `default`.
        sidekiq.ruby(
            "2.times { SlowJob.perform_async(60) }; SlowJob.set(queue: 'mailers').perform_async(60)"
        )
        wait_for(lambda: db1.llen("queue:default") + db1.llen("queue:mailers") == 0, timeout=30)
        sidekiq.ruby("2.times { SlowJob.perform_async(60) }")
        time.sleep(1.5)  # the waiting jobs' age
        # The heartbeat (every 5 s) publishes the busy jobs.
        api = wait_for(
            lambda: (
                (a := sidekiq.api("default", "mailers"))["queues"]["default"]["busy"] == 2
                and a["queues"]["mailers"]["busy"] == 1
                and a
            ),
            timeout=30,
        )
        assert db1.keys("*:workers") and not db1.keys("*:work")  # Sidekiq 6's layout
        with exporter(worker_queues(tmp_path, "sidekiq", "default", "mailers")) as running:
            series = running.scrape()
            scraped_at = time.time()
            for name in ("default", "mailers"):
                _assert_close(
                    queue_figures(series, name, "sidekiq"), _expected(api, name, scraped_at)
                )
            assert queue_figures(series, "default", "sidekiq")["in_progress"] == 2

            # Garbage at the tail (the oldest end): the age is the next job's.
            db1.rpush("queue:default", b"\x00 not a job")
            series = running.scrape()
            expected = _expected(api, "default", time.time())
            found = queue_figures(series, "default", "sidekiq")
            assert found["depth"] == expected["depth"] + 1
            assert found["oldest_age_seconds"] == pytest.approx(
                expected["oldest_age_seconds"], abs=1.0
            )
    finally:
        stop(server)


def test_due_scheduled_jobs_and_retries_count_at_zero_dynos(tmp_path, db1):
    """With no Sidekiq process, nothing moves due jobs to their queue: they are waiting work."""
    sidekiq = Sidekiq(tmp_path)
    server = sidekiq.start("default")
    try:
        sidekiq.ruby("FailJob.perform_async")  # fails once: a retry due 2 s later
        wait_for(lambda: db1.zcard("retry") == 1, timeout=30)
    finally:
        stop(server)  # the role is at zero dynos from here on
    assert not any(db1.exists(p) for p in db1.smembers("processes"))
    sidekiq.ruby(
        "SlowJob.set(queue: 'mailers').perform_in(1, 0);"  # due in 1 s
        "SlowJob.perform_in(3600, 0);"  # not due for an hour: no waiting work yet
        "SlowJob.set(queue: 'mailers').perform_async(0)"  # an ordinary waiting job
    )
    # The retry is due 2 s after the failure plus Sidekiq's jitter (up to 9 s).
    retry_due = db1.zrange("retry", 0, 0, withscores=True)[0][1]
    time.sleep(max(1.5, retry_due - time.time() + 0.5))
    api = sidekiq.api("default", "mailers")
    assert api["queues"]["default"]["due"] == 1 and api["queues"]["mailers"]["due"] == 1
    with exporter(worker_queues(tmp_path, "sidekiq", "default", "mailers")) as running:
        series = running.scrape()
        scraped_at = time.time()
    for name in ("default", "mailers"):
        _assert_close(queue_figures(series, name, "sidekiq"), _expected(api, name, scraped_at))
    # the retry; the job due in an hour is not
    assert queue_figures(series, "default", "sidekiq")["depth"] == 1
    # The retry waits since its due time, longer than the list's job in `mailers`.
    assert queue_figures(series, "default", "sidekiq")["oldest_age_seconds"] >= 1.0


def test_a_running_sidekiq_moves_what_was_counted_as_due(tmp_path, db1):
    """A due job is counted once: in the scheduled set, then in its queue, then in progress."""
    sidekiq = Sidekiq(tmp_path)
    sidekiq.ruby("SlowJob.perform_in(1, 30)")
    time.sleep(1.5)
    with exporter(worker_queues(tmp_path, "sidekiq", "default")) as running:
        assert queue_figures(running.scrape(), "default", "sidekiq")["depth"] == 1
        server = sidekiq.start("default")
        try:
            # Sidekiq's poller first runs 10-15 s after the process starts.
            def moved_and_running() -> bool:
                found = queue_figures(running.scrape(), "default", "sidekiq")
                assert found["depth"] + found["in_progress"] <= 1
                return found["in_progress"] == 1

            wait_for(moved_and_running, timeout=45, interval=0.5)
            assert db1.zcard("schedule") == 0
        finally:
            stop(server)


def test_hand_made_sidekiq_7_work_hash_and_8_milliseconds(tmp_path, db1):
    """The same figures from Sidekiq 7/8's layout (`:work`, enqueued_at in milliseconds)."""
    now = time.time()
    client: redis.Redis = db1
    identity = "web.1:7:abc"
    client.sadd("processes", identity)
    client.hset(identity, mapping={"busy": 1, "beat": now})
    client.hset(f"{identity}:work", "t1", json.dumps({"queue": "default", "run_at": int(now)}))
    job = {"queue": "default", "class": "HardJob", "args": [], "jid": "a1"}
    client.lpush("queue:default", json.dumps({**job, "enqueued_at": int((now - 20) * 1000)}))
    client.zadd("retry", {json.dumps({**job, "jid": "r1", "retry_count": 0}): now - 40.5})
    with exporter(worker_queues(tmp_path, "sidekiq", "default")) as running:
        found = queue_figures(running.scrape(), "default", "sidekiq")
        scraped_at = time.time()
    assert found["depth"] == 2
    assert found["in_progress"] == 1
    assert found["oldest_age_seconds"] == pytest.approx(40.5 + scraped_at - now, abs=1.0)


def test_the_dead_set_as_a_gauge(tmp_path, db1):
    """Jobs out of retries (Sidekiq's DeadSet#kill puts them there): dead, not waiting.

    The set is server-wide: its size has an empty queue label, and only when one role owns
    every Sidekiq queue on the server."""
    sidekiq = Sidekiq(tmp_path)
    kill_two = (
        "dead = Sidekiq::DeadSet.new;"
        '2.times { |n| dead.kill(Sidekiq.dump_json("class" => "FailJob", "args" => [],'
        '"queue" => "default", "jid" => "dead-#{n}")) };'
        "puts Sidekiq::DeadSet.new.size"
    )
    size = int(sidekiq._run(["ruby", "-r", "sidekiq/api", "-e", kill_two]))
    owned = [Queue("shop", "worker", "default", "sidekiq")]
    samples = RedisSource(exporter_helpers.REDIS_DB1, owned, timeout=2).read()
    figures = {(s.metric, s.labels[2]): s.value for s in samples}
    assert figures[("dynoscaler_queue_dead", "")] == size == 2
    assert figures[("dynoscaler_queue_depth", "default")] == 0
    shared = [*owned, Queue("shop", "mailer", "mail", "sidekiq")]
    samples = RedisSource(exporter_helpers.REDIS_DB1, shared, timeout=2).read()
    assert not [s for s in samples if s.metric == "dynoscaler_queue_dead"]

    db1.delete("dead")
    db1.set("dead", "a string, not a sorted set")
    with pytest.raises(PartialRead) as caught:
        RedisSource(exporter_helpers.REDIS_DB1, owned, timeout=2).read()
    (error,) = caught.value.errors
    assert error.message.startswith("dead: not readable: WRONGTYPE") and not error.feeds
    assert {s.metric for s in caught.value.samples} >= {"dynoscaler_queue_depth"}
    assert "dynoscaler_queue_dead" not in {s.metric for s in caught.value.samples}


def test_jobs_in_progress_per_dyno_from_the_processes_hostnames():
    """Sidekiq names a process after $DYNO (worker.3 on Heroku): its busy count is that
    dyno's, for scale_down_when_busy's wait. Redis DB 14, hand-made processes."""
    client = redis.Redis.from_url("redis://127.0.0.1:6379/14")
    client.flushdb()
    processes = {
        "worker.1:7:a": ("worker.1", ["default"], 2),
        "worker.3:7:b": ("worker.3", ["default", "low"], 1),
        "worker.3:8:c": ("worker.3", ["low"], 4),  # a second process on the same dyno
        "worker.4:7:d": ("worker.4", ["default"], 0),
        "mailer.1:7:e": ("mailer.1", ["mail"], 3),  # another role
        "d41d8cd9:7:f": ("d41d8cd9", ["default"], 5),  # no dyno name (Fir, no $DYNO)
    }
    for identity, (hostname, queues, busy) in processes.items():
        client.sadd("processes", identity)
        client.hset(
            identity,
            mapping={"info": json.dumps({"hostname": hostname, "queues": queues}), "busy": busy},
        )
    client.sadd("processes", "worker.2:7:gone")  # its hash expired: no process
    client.sadd("processes", "worker.5:7:odd")
    client.hset("worker.5:7:odd", mapping={"info": "not json", "busy": 1})
    queues = [
        Queue("shop", "worker", "default", "sidekiq"),
        Queue("shop", "worker", "low", "sidekiq"),
    ]
    try:
        samples = RedisSource("redis://127.0.0.1:6379/14", queues, timeout=2).read()
    finally:
        client.flushdb()
    by_dyno = {s.labels: s.value for s in samples if s.metric == "dynoscaler_dyno_in_progress"}
    assert by_dyno == {
        ("shop", "worker", "sidekiq", "1"): 2,
        ("shop", "worker", "sidekiq", "3"): 5,
        ("shop", "worker", "sidekiq", "4"): 0,
    }
