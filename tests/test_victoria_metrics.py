"""The same prometheus/rules/*.yml on Prometheus and on VictoriaMetrics with vmalert.

One metrics page (the metric contract for three roles, counters growing with
time) is scraped every second by a real Prometheus running the rules and by a
real VictoriaMetrics (its own -promscrape.config), against which vmalert
evaluates the very same rule files, writing the records back to it. Each engine
posts its alerts to a receiver standing in for Alertmanager. Once Prometheus has
the steady answer, VictoriaMetrics must give the same
app_role:dynoscaler_desired_dynos role by role, and ScaleRole's desired_dynos
annotation (a `query` template) must be the same from both.

Roles (D = 60 s, B = 10 s, miss ratio 0.01; S by Little's law):
- shop/worker: λ = 4/s, 12 in progress (S = 3 s), 10 waiting, c = 4, 1 dyno:
  2 dynos (test_rules_prometheus_live.py derives it);
- shop/mailer: λ = 2/s, 8 in progress (S = 4 s), 200 waiting, c = 2, 2 dynos:
  the backlog's drain term decides (200·4/46 = 17.4 slots, 9 dynos);
- dialer/calls: idle, nothing waiting, min_dynos 1, 3 dynos.

The engines need about three minutes to agree, not the one Prometheus needs: in
VictoriaMetrics 1.79.5 (Debian) a recorded series that is new is seen by the
rules reading it about 10 s later, per level of the rules' chain, so the counts
driven by the rates (they appear after a minute) reach desired_dynos about 100 s
after Prometheus has them. docs/scaling.md gives the measurements and the
other differences between the engines. So the engines start when the session
is collected (head_start.py) and settle while the other tests run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import head_start
import pytest
import requests
import yaml
from exporter_helpers import wait_for
from rules_support import ROOT
from support import Receiver, metrics_page

from dynoscaler.processes import NotServing, free_port, stop, wait_until_answering

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

PROMETHEUS = "/usr/bin/prometheus"
VICTORIA_METRICS = shutil.which("victoria-metrics")
VMALERT = shutil.which("vmalert")
if VICTORIA_METRICS is None or VMALERT is None:
    pytest.skip(
        "victoria-metrics and vmalert are not installed (./scripts/setup installs the"
        " Debian package victoria-metrics)",
        allow_module_level=True,
    )

DESIRED = "app_role:dynoscaler_desired_dynos"
BASE = {
    "target_deadline_seconds": 60,
    "boot_seconds": 10,
    "miss_ratio": 0.01,
    "scale_down_window_seconds": 60,
    "max_dynos": 10,
}
# app, role: (min_dynos, concurrency, dynos, waiting, in progress, completions per second)
ROLES: dict[tuple[str, str], tuple[int, int, int, int, int, float]] = {
    ("shop", "worker"): (0, 4, 1, 10, 12, 4.0),
    ("shop", "mailer"): (0, 2, 2, 200, 8, 2.0),
    ("dialer", "calls"): (1, 1, 3, 0, 0, 0.0),
}


def exposition(started: float) -> str:
    elapsed = time.monotonic() - started
    lines = ["# TYPE dynoscaler_jobs_completed_total counter"]
    for (app, role), (least, slots, dynos, waiting, busy, rate) in ROLES.items():
        labels = f'app="{app}",role="{role}"'
        queue = f'{labels},queue="default",backend="sidekiq"'
        policy = {**BASE, "min_dynos": least, "concurrency": slots}
        lines += [f"dynoscaler_policy_{name}{{{labels}}} {v}" for name, v in policy.items()]
        lines += [
            f"dynoscaler_dynos{{{labels}}} {dynos}",
            f"dynoscaler_queue_depth{{{queue}}} {waiting}",
            f"dynoscaler_queue_in_progress{{{queue}}} {busy}",
            f"dynoscaler_queue_oldest_age_seconds{{{queue}}} {4 if waiting else 0}",
            f"dynoscaler_jobs_completed_total{{{queue}}} {rate * elapsed}",
            f'dynoscaler_source_up{{{labels},source="redis://h/0",backend="sidekiq"}} 1',
        ]
    return "\n".join(lines) + "\n"


def scrape_config(target: str) -> dict[str, Any]:
    """prometheus.yml with 1s intervals, scraping only `target`, alerting to no one yet."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text("utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "dynoscaler-exporter"]
    job["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [job]
    return config


class Engines:
    """Prometheus, VictoriaMetrics and vmalert, each logging to a file in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen] = []
        self.prometheus = self.victoria = ""

    def start(self, name: str, command: list[str], ready: str) -> None:
        with open(self.directory / f"{name}.log", "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        try:
            wait_until_answering(ready, process, ok_only=True, timeout=30)
        except NotServing as error:
            raise AssertionError(f"{error}\n{self.log(name)}") from None

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]


@contextmanager
def settling() -> Iterator[tuple[Engines, Receiver, Receiver]]:
    """The engines, started when the session is collected (head_start.py)."""
    with tempfile.TemporaryDirectory() as directory:
        yield from _engines(Path(directory))


def _engines(tmp_path: Path) -> Iterator[tuple[Engines, Receiver, Receiver]]:
    started = time.monotonic()
    page = metrics_page(lambda: exposition(started))
    from_prometheus, from_vmalert = Receiver(), Receiver()
    engines = Engines(tmp_path)
    try:
        config = scrape_config(f"127.0.0.1:{page.port}")
        shutil.copytree(ROOT / "prometheus" / "rules", tmp_path / "rules")
        config["alerting"]["alertmanagers"][0]["static_configs"] = [
            {"targets": [from_prometheus.url.removeprefix("http://")]}
        ]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        scrape = {"global": {"scrape_interval": "1s"}, "scrape_configs": config["scrape_configs"]}
        (tmp_path / "scrape.yml").write_text(yaml.safe_dump(scrape), encoding="utf-8")
        port, vm_port, vmalert_port = free_port(), free_port(), free_port()
        engines.prometheus = f"http://127.0.0.1:{port}"
        engines.victoria = f"http://127.0.0.1:{vm_port}"
        engines.start(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            f"{engines.prometheus}/-/ready",
        )
        engines.start(
            "victoria-metrics",
            [
                VICTORIA_METRICS,
                f"-httpListenAddr=127.0.0.1:{vm_port}",
                f"-storageDataPath={tmp_path / 'vm-data'}",
                f"-promscrape.config={tmp_path / 'scrape.yml'}",
                "-search.latencyOffset=1s",  # default 30s: younger samples are not read
                "-search.disableCache",
            ],
            f"{engines.victoria}/health",
        )
        engines.start(
            "vmalert",
            [
                VMALERT,
                f"-httpListenAddr=127.0.0.1:{vmalert_port}",
                f"-rule={tmp_path / 'rules'}/*.yml",
                f"-datasource.url={engines.victoria}",
                f"-remoteWrite.url={engines.victoria}",
                "-remoteWrite.flushInterval=200ms",  # default 5s: records reach VM late
                f"-notifier.url={from_vmalert.url}",
                "-evaluationInterval=1s",
            ],
            f"http://127.0.0.1:{vmalert_port}/health",
        )
        yield engines, from_prometheus, from_vmalert
    finally:
        for process in reversed(engines.processes):
            stop(process, timeout=15)
        for server in (page, from_prometheus, from_vmalert):
            server.close()


@pytest.fixture
def engines() -> tuple[Engines, Receiver, Receiver]:
    return head_start.running(sys.modules[__name__])


def desired(url: str) -> dict[tuple[str, str], float]:
    try:
        response = requests.get(f"{url}/api/v1/query", params={"query": DESIRED}, timeout=2)
    except requests.ConnectionError:
        return {}
    results = response.json()["data"]["result"] if response.status_code == 200 else []
    return {(r["metric"]["app"], r["metric"]["role"]): float(r["value"][1]) for r in results}


def annotated(receiver: Receiver) -> dict[tuple[str, str], str]:
    """The last desired_dynos annotation of each role's firing ScaleRole."""
    found = {}
    for _, _, body in list(receiver.requests):
        for alert in body:
            labels = alert["labels"]
            if labels.get("alertname") == "ScaleRole":
                found[labels["app"], labels["role"]] = alert["annotations"].get("desired_dynos")
    return found


def test_vmalert_on_victoria_metrics_gives_prometheus_desired_counts(engines) -> None:
    engines, from_prometheus, from_vmalert = engines
    started = time.monotonic()
    timeline: list[tuple[float, dict, dict]] = []
    prometheus: dict = {}
    victoria: dict = {}
    while time.monotonic() - started < 240:
        prometheus, victoria = desired(engines.prometheus), desired(engines.victoria)
        if not timeline or (prometheus, victoria) != timeline[-1][1:]:
            timeline.append((round(time.monotonic() - started, 1), prometheus, victoria))
        if prometheus.get(("shop", "worker")) == 2.0 and victoria == prometheus:
            break
        time.sleep(0.5)
    report = "\n".join(f"{t:6.1f}s prometheus {p} victoria {v}" for t, p, v in timeline)
    print(report)
    assert prometheus.get(("shop", "worker")) == 2.0, report
    assert prometheus.get(("shop", "mailer")) == 9.0, report
    assert set(prometheus) == set(ROLES), report
    assert victoria == prometheus, report
    # The alert templates ($labels, `query`, first, value, printf) agree too:
    # each ScaleRole's desired_dynos is the count both engines computed.
    scaling = {
        role: f"{count:.0f}" for role, count in prometheus.items() if role != ("dialer", "calls")
    }
    wait_for(lambda: scaling.items() <= annotated(from_prometheus).items(), timeout=20)
    wait_for(lambda: annotated(from_vmalert) == annotated(from_prometheus), timeout=20)
