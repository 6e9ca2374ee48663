"""prometheus/prometheus.yml and the rules in a real Prometheus, scraping a real exporter.

A copy of the configuration with 1s intervals (the only change, as the demo
does) scrapes a small HTTP server serving the metric contract for one worker
role: λ = 4 jobs/s, S = 3s by Little's law (12 in progress), 10 waiting, D = 60s,
B = 10s, c = 4, miss ratio 0.01, 1 dyno now. The model gives a = 12, margin
min(2.3268·√12, ln(100)·3/57) = 0.242, drain 10·3/47 = 0.64, just-in-time
slots (Q + P + λ'·h)·S/(h + W) + m = (22 + 4·30)·3/77 + 0.242 = 5.77 (h = B + 20
= 30s, W = 47s), max(0.64, 5.77) / 4 -> 2 dynos, above the 1 now (the load
term's 4 dynos only bound a scale-down). (The measured λ' is λ or more, so the
count is 2 until a look-ahead of +47%.)
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import head_start
import pytest
import requests
import yaml
from rules_support import ROOT, WORKER
from support import metrics_page

from dynoscaler.model import RoleInputs, required_capacity
from dynoscaler.processes import free_port, stop

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

PROMETHEUS = "/usr/bin/prometheus"
ROLE = 'app="shop",role="worker"'
QUEUE = f'{ROLE},queue="default",backend="sidekiq"'
POLICY = {
    "min_dynos": 0,
    "max_dynos": 10,
    "target_deadline_seconds": 60,
    "concurrency": 4,
    "boot_seconds": 10,
    "miss_ratio": 0.01,
    "scale_down_window_seconds": 60,
}


def exposition(started: float) -> str:
    completed = 4.0 * (time.monotonic() - started)  # λ = 4 jobs/s, depth flat
    lines = [f"dynoscaler_policy_{name}{{{ROLE}}} {value}" for name, value in POLICY.items()]
    lines += [
        f"dynoscaler_dynos{{{ROLE}}} 1",
        f"dynoscaler_queue_depth{{{QUEUE}}} 10",
        f"dynoscaler_queue_in_progress{{{QUEUE}}} 12",
        f"dynoscaler_queue_oldest_age_seconds{{{QUEUE}}} 4",
        "# TYPE dynoscaler_jobs_completed_total counter",
        f"dynoscaler_jobs_completed_total{{{QUEUE}}} {completed}",
        f'dynoscaler_source_up{{{ROLE},source="redis://127.0.0.1:6379/0",backend="sidekiq"}} 1',
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def settling() -> Iterator[str]:
    """Prometheus scraping the page, started when the session is collected (head_start.py)."""
    started = time.monotonic()
    server = metrics_page(lambda: exposition(started))
    try:
        with tempfile.TemporaryDirectory() as directory:
            yield from _prometheus(Path(directory), f"127.0.0.1:{server.port}")
    finally:
        server.close()


@pytest.fixture
def prometheus() -> str:
    return head_start.running(sys.modules[__name__])


def _prometheus(tmp_path: Path, exporter: str) -> Iterator[str]:
    shutil.copytree(ROOT / "prometheus" / "rules", tmp_path / "rules")
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text("utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["dynoscaler-exporter"]["static_configs"] = [{"targets": [exporter]}]
    jobs["dynoscaler-scaler"]["static_configs"] = [{"targets": [f"127.0.0.1:{free_port()}"]}]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{free_port()}"]}
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, timeout=15)


def query(url: str, expr: str) -> dict[str, float]:
    try:
        response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=2)
    except requests.ConnectionError:
        return {}
    results = response.json()["data"]["result"] if response.status_code == 200 else []
    return {r["metric"].get("__name__", expr): float(r["value"][1]) for r in results}


def wait_for(url: str, expr: str, expected: float, seconds: float) -> dict[str, float]:
    deadline = time.monotonic() + seconds
    got: dict[str, float] = {}
    while time.monotonic() < deadline:
        got = query(url, expr)
        if list(got.values()) == [expected]:
            return got
        time.sleep(0.5)
    return got


def test_real_prometheus_computes_the_desired_count(prometheus: str) -> None:
    # the role holds at 1 until the counter has a full minute of samples
    got = wait_for(prometheus, "app_role:dynoscaler_desired_dynos", 2.0, 90)
    assert list(got.values()) == [2.0]
    rate = query(prometheus, "app_role:dynoscaler_arrival_rate:rate1m")
    seconds = query(prometheus, "app_role:dynoscaler_processing_seconds:rate1m")
    # scrape timing makes the measured rate approximate; the model on the
    # measured inputs must still give the same count
    assert list(rate.values())[0] == pytest.approx(4.0, rel=0.1)
    assert list(seconds.values())[0] == pytest.approx(3.0, rel=0.1)
    policy = dataclasses.replace(WORKER, concurrency=4, scale_down_window=60, cooldown=0)
    inputs = RoleInputs(4.0, 3.0, backlog=10, in_progress=12, current_dynos=1)
    assert required_capacity(inputs, policy).desired_dynos == 2
    # firing at once (desired 2 > 1 dyno; scale-ups have no for:): loaded and evaluated
    alerts = wait_for(prometheus, 'ALERTS{alertname="ScaleRole",direction="up"}', 1.0, 20)
    assert list(alerts.values()) == [1.0]
