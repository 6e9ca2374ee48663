"""The demo's parts on their own: supervisor, configuration rewriting, load, dynos, figures.

Real processes, real Redis (database 7, a spare), and the real promtool/amtool
checking the rewritten files. The whole loop is in test_e2e.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import yaml

from dynoscaler.demo import configs, measure
from dynoscaler.demo.supervisor import DemoError, Supervisor, check_ports_free, signals_set
from dynoscaler.demo.workers import (
    DONE_PREFIX,
    HEARTBEAT_SECONDS,
    LATE_PREFIX,
    DynoPool,
    dyno_argv,
)
from dynoscaler.demo.workload import Producer, spike
from exporter.timing import COUNT_FIELD, timing_key

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture
def supervisor(tmp_path: Path):
    with Supervisor(tmp_path, {"PYTHONPATH": str(ROOT)}) as owner:
        yield owner


@pytest.fixture
def client():
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited; only waiting for a reaper


# -- supervisor ---------------------------------------------------------------------------


def test_a_taken_port_is_named_with_its_role():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(DemoError, match=rf"{port} \(prometheus\).*--port-base"):
            check_ports_free({"prometheus": port})


def test_stop_reaches_grandchildren(supervisor, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    child = supervisor.start("shell", ["bash", "-c", f"sleep 60 & echo $! > {pid_file}; wait"])
    deadline = time.monotonic() + 5
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    supervisor.stop(child, grace=5)
    deadline = time.monotonic() + 5
    while not _gone(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived its group"
        time.sleep(0.05)
    assert supervisor.children == []


def test_a_child_that_dies_while_starting_is_reported_with_its_log(supervisor):
    child = supervisor.start("broken", ["bash", "-c", "echo cannot bind; exit 3"])
    with pytest.raises(DemoError, match=r"broken exited with code 3(.|\n)*cannot bind"):
        supervisor.wait_ready(child, lambda: False, timeout=10)


def test_a_missing_program_is_a_clear_error(supervisor):
    with pytest.raises(DemoError, match="cannot start ghost"):
        supervisor.start("ghost", ["/nonexistent/ghost"])


# -- configuration rewriting --------------------------------------------------------------


def test_prometheus_config_points_at_the_demo_and_promtool_accepts_it(tmp_path):
    document = configs.prometheus(
        ROOT / "prometheus" / "prometheus.yml",
        exporter="127.0.0.1:1001",
        alertmanager="127.0.0.1:1002",
        scaler="127.0.0.1:1003",
        interval=1.5,
    )
    targets = {job["job_name"]: job["static_configs"] for job in document["scrape_configs"]}
    assert targets == {
        "dynoscaler-exporter": [{"targets": ["127.0.0.1:1001"]}],
        "dynoscaler-scaler": [{"targets": ["127.0.0.1:1003"]}],
    }
    assert document["global"]["scrape_interval"] == "1500ms"
    assert document["global"]["evaluation_interval"] == "1500ms"
    assert document["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:1002"
    ]
    path = configs.write(document, tmp_path / "prometheus.yml")
    check = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "rule files found" in check.stdout and "0 rule files found" not in check.stdout


ALERTMANAGER = """
route:
  receiver: people
  group_wait: 30s
  routes:
    - matchers: ['severity="scale"']
      receiver: scaler
      group_wait: 5s
      repeat_interval: 1m
receivers:
  - name: scaler
    webhook_configs:
      - url: http://127.0.0.1:9500/alerts
        send_resolved: true
        http_config: {authorization: {type: Bearer, credentials_file: webhook-token}}
  - name: people
    webhook_configs:
      - url: http://127.0.0.1:9099/alerts
"""


def test_alertmanager_config_sends_only_scale_alerts_to_the_demo_scaler(tmp_path):
    source = tmp_path / "alertmanager.yml"
    source.write_text(ALERTMANAGER)
    document = configs.alertmanager(source, "http://127.0.0.1:4321", "s3cret", group_wait=1)
    receivers = {r["name"]: r for r in document["receivers"]}
    assert receivers["people"] == {"name": "people"}
    assert receivers["scaler"]["webhook_configs"] == [
        {
            "url": "http://127.0.0.1:4321/alerts",
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": "s3cret"}},
        }
    ]
    route = document["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1000ms",
        "2000ms",
        "2000ms",
    )
    assert "group_wait" not in route["routes"][0]  # inherits the fast one


def test_the_projects_alertmanager_config_rewritten_passes_amtool(tmp_path):
    document = configs.alertmanager(
        ROOT / "alertmanager" / "alertmanager.yml", "http://127.0.0.1:4321", "s3cret", 1
    )
    path = configs.write(document, tmp_path / "alertmanager.yml")
    check = subprocess.run(
        ["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_alertmanager_config_without_a_scale_route_is_refused(tmp_path):
    source = tmp_path / "alertmanager.yml"
    source.write_text("route: {receiver: people}\nreceivers: [{name: people}]\n")
    with pytest.raises(DemoError, match='no route for severity="scale"'):
        configs.alertmanager(source, "http://127.0.0.1:1", "t", 1)


# -- load and dynos -----------------------------------------------------------------------


def test_producer_writes_sidekiq_jobs_at_the_scenario_rate(client):
    scenario = spike(base=0, peak=50, start=0, length=2, duration=2)
    producer = Producer(client, ["default"], scenario, seed=1).start()
    deadline = time.monotonic() + 10
    while not producer.done:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pushed = sum(count for _, count in producer.pushed)
    assert client.llen("queue:default") == pushed
    assert 60 <= pushed <= 140  # Poisson arrivals around 100
    assert client.smembers("queues") == {b"default"}
    job = json.loads(client.lindex("queue:default", -1))
    assert set(job) == {"class", "args", "queue", "jid", "retry", "created_at", "enqueued_at"}
    assert job["queue"] == "default" and job["args"][0] > 0
    assert abs(job["enqueued_at"] - time.time()) < 10


def test_dynos_follow_the_formation_and_drain_the_queue(supervisor, client):
    now = time.time()
    for seconds, enqueued in ((0.05, now), (0.05, now), (0.05, now - 100)):  # the last one late
        job = {"args": [seconds], "enqueued_at": enqueued, "queue": "default", "jid": "x"}
        client.lpush("queue:default", json.dumps(job))
    pool = DynoPool(supervisor, {("shop", "worker"): dyno_argv(REDIS_URL, ["default"], 2, 0, 30)})
    pool("shop", "worker", 0, 2)
    assert pool.count("shop", "worker") == 2
    deadline = time.monotonic() + 20
    while int(client.get(DONE_PREFIX + "default") or 0) < 3 or client.scard("processes") < 2:
        assert time.monotonic() < deadline, "the dynos did not drain the queue"
        time.sleep(0.1)
    assert client.get(LATE_PREFIX + "default") == b"1"
    assert client.get("stat:processed") == b"3"
    timing = client.hgetall(timing_key("default"))
    assert timing[COUNT_FIELD.encode()] == b"3"
    # The enqueue-to-done times (from the jobs' enqueued_at, the dynos' start included):
    # two within the 30 s deadline, the late one past 100 s.
    totals = [
        (float(k.removeprefix(b"total:le:")), int(v))
        for k, v in timing.items()
        if k.startswith(b"total:le:")
    ]
    assert sum(n for bound, n in totals if bound <= 30) == 2
    assert sum(n for bound, n in totals if bound > 100) == 1
    pool("shop", "worker", 2, 0)
    deadline = time.monotonic() + 20
    while client.scard("processes") or supervisor.children:
        assert time.monotonic() < deadline, "stopped dynos stayed registered"
        time.sleep(0.1)


# -- figures ------------------------------------------------------------------------------


def _patch(at: float, quantity: int, status: int = 200) -> dict:
    body = {"updates": [{"type": "worker", "quantity": quantity}]}
    return {"at": at, "path": "/apps/x/formation", "body": body, "status": status}


def test_reaction_time_is_the_first_scale_up_after_the_spike():
    log = [_patch(5, 2), _patch(12, 2), _patch(14, 6, status=429), _patch(15, 6), _patch(20, 8)]
    assert measure.reaction_time(log, "worker", spike_at=10, initial=1) == 5
    assert measure.reaction_time(log, "worker", spike_at=21, initial=1) is None
    single = {"at": 3, "path": "/apps/x/formation/worker", "body": {"quantity": 4}, "status": 200}
    assert measure.quantities(single) == {"worker": 4}


def test_alert_hold_reads_the_rules(tmp_path):
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [
                            {"alert": "ScaleRole", "expr": "1", "labels": {"direction": "up"}},
                            {
                                "alert": "ScaleRole",
                                "expr": "1",
                                "for": "1m30s",
                                "labels": {"direction": "down"},
                            },
                        ],
                    }
                ]
            }
        )
    )
    assert measure.alert_for_seconds([rules], "ScaleRole") == 90
    assert measure.alert_for_seconds([rules], "Other") == 0
    with pytest.raises(ValueError):
        measure.duration_seconds("15 s")


ORPHAN_PARENT = """
import sys, time
from pathlib import Path
from dynoscaler.demo.supervisor import Supervisor
from dynoscaler.demo.workers import DynoPool, dyno_argv
argv = dyno_argv(sys.argv[2], ["q"], 1, 0, 30)
pool = DynoPool(Supervisor(Path(sys.argv[1])), {("a", "w"): argv})
pool.scale("a", "w", 1)
print(pool.dynos[("a", "w")][0].process.pid, flush=True)
time.sleep(120)
"""


def test_dynos_exit_when_the_demo_is_killed(tmp_path, client):
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_PARENT, str(tmp_path), REDIS_URL],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        dyno = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while not client.scard("processes"):  # booted and registered
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        parent.kill()  # SIGKILL: no clean-up of its own
        parent.wait()
        parent.stdout.close()
    deadline = time.monotonic() + 3 * HEARTBEAT_SECONDS
    while not _gone(dyno):
        assert time.monotonic() < deadline, "the dyno outlived the demo"
        time.sleep(0.2)
    assert client.scard("processes") == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_the_run_sets_the_event_and_raises_nothing(sig):
    # A KeyboardInterrupt raised inside `with lock:` can leave the lock held and the
    # clean-up waiting for it forever: while the scenario runs, signals only set an event.
    before = signal.getsignal(sig)
    with signals_set(threading.Event()) as interrupted:
        os.kill(os.getpid(), sig)
        assert interrupted.wait(5)
    assert signal.getsignal(sig) is before
