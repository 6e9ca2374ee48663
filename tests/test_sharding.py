"""Sharding by app: two real Prometheus servers, each keeping half of the apps, one Alertmanager.

Each shard runs prometheus/prometheus.yml and the rules, with
prometheus/sharding/shard-relabel.yml's metric_relabel_configs (its shard
number in the regex) on its scrape jobs. Both scrape one metrics page serving
the contract for eight apps, each with a worker role at zero dynos and jobs
waiting (so its desired count is 1 at the first evaluation and ScaleRole
fires at once), and both send alerts to one real Alertmanager with
alertmanager/alertmanager.yml, whose scale receiver is a webhook receiver here.

Every app's desired count is computed by exactly one shard, the one Prometheus'
hashmod puts it in (md5 of the app name, its last 8 bytes mod 2), and the
Alertmanager notifies each app's ScaleRole once.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from exporter_helpers import wait_for
from rules_support import ROOT
from support import Receiver, metrics_page

from dynoscaler.processes import free_port, stop, wait_until_answering

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
SHARDS = 2
APPS = [f"app{n}" for n in range(8)]
POLICY = {
    "min_dynos": 0,
    "max_dynos": 10,
    "target_deadline_seconds": 60,
    "concurrency": 1,
    "boot_seconds": 10,
    "miss_ratio": 0.01,
    "scale_down_window_seconds": 60,
}


def exposition() -> str:
    lines = ["# TYPE dynoscaler_jobs_completed_total counter"]
    for app in APPS:
        role = f'app="{app}",role="worker"'
        queue = f'{role},queue="default",backend="sidekiq"'
        lines += [f"dynoscaler_policy_{name}{{{role}}} {v}" for name, v in POLICY.items()]
        lines += [
            f"dynoscaler_dynos{{{role}}} 0",
            f"dynoscaler_queue_depth{{{queue}}} 3",
            f"dynoscaler_queue_in_progress{{{queue}}} 0",
            f"dynoscaler_queue_oldest_age_seconds{{{queue}}} 2",
            f"dynoscaler_jobs_completed_total{{{queue}}} 0",
            f'dynoscaler_source_up{{{role},source="redis://h/0",backend="sidekiq"}} 1',
        ]
    lines.append(
        'dynoscaler_source_scrape_duration_seconds{source="redis://h/0",backend="sidekiq"} 0'
    )
    return "\n".join(lines) + "\n"


def hashmod_shard(app: str) -> int:
    """Prometheus' hashmod: the last 8 bytes of md5(value), big-endian, mod the modulus."""
    return int.from_bytes(hashlib.md5(app.encode()).digest()[8:], "big") % SHARDS


def shard_config(shard: int, target: str, alertmanager: str) -> dict:
    """prometheus.yml (1s intervals) with shard-relabel.yml's relabelling for `shard`."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text("utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    snippet = (ROOT / "prometheus" / "sharding" / "shard-relabel.yml").read_text("utf-8")
    relabel = yaml.safe_load(snippet)["metric_relabel_configs"]
    relabel[0]["modulus"] = SHARDS
    relabel[1]["regex"] = relabel[1]["regex"].replace(";0", f";{shard}")
    for job in config["scrape_configs"]:
        job["metric_relabel_configs"] = relabel
        address = target if job["job_name"] == "dynoscaler-exporter" else f"127.0.0.1:{free_port()}"
        job["static_configs"] = [{"targets": [address]}]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    return config


def start(command: list[str], ready: str) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_answering(ready, process, ok_only=True, timeout=30)
    except BaseException:
        stop(process)
        raise
    return process


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[list[str], Receiver]]:
    page = metrics_page(exposition)
    receiver = Receiver()
    processes: list[subprocess.Popen] = []
    try:
        config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text("utf-8"))
        for entry in config["receivers"]:
            entry["webhook_configs"][0]["url"] = f"{receiver.url}/{entry['name']}"
        (tmp_path / "webhook-token").write_text("token", encoding="utf-8")
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        am_port = free_port()
        processes.append(
            start(
                [
                    ALERTMANAGER,
                    f"--config.file={tmp_path / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                f"http://127.0.0.1:{am_port}/-/ready",
            )
        )
        shards = []
        for shard in range(SHARDS):
            directory = tmp_path / f"shard-{shard}"
            directory.mkdir()
            (directory / "rules").symlink_to(ROOT / "prometheus" / "rules")
            config = shard_config(shard, f"127.0.0.1:{page.port}", f"127.0.0.1:{am_port}")
            (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            processes.append(
                start(
                    [
                        PROMETHEUS,
                        f"--config.file={directory / 'prometheus.yml'}",
                        f"--storage.tsdb.path={directory / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    f"{url}/-/ready",
                )
            )
            shards.append(url)
        yield shards, receiver
    finally:
        for process in reversed(processes):
            stop(process, timeout=15)
        page.close()
        receiver.close()


def query(url: str, expr: str) -> dict[str, float]:
    response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    return {r["metric"]["app"]: float(r["value"][1]) for r in response.json()["data"]["result"]}


def test_each_app_is_computed_by_exactly_one_shard(fleet) -> None:
    shards, receiver = fleet
    expected = [{a for a in APPS if hashmod_shard(a) == shard} for shard in range(SHARDS)]
    assert all(expected), "the app names must land on both shards"

    def computed() -> list[dict[str, float]]:
        found = [query(url, "app_role:dynoscaler_desired_dynos") for url in shards]
        return found if [set(f) for f in found] == expected else []

    found = wait_for(computed, timeout=30, interval=0.5)
    assert all(value == 1.0 for f in found for value in f.values())
    # The series without an app label are on both; the other apps' series on neither.
    for url, own in zip(shards, expected, strict=True):
        assert set(query(url, "dynoscaler_queue_depth")) == own
        assert len(query_any(url, "dynoscaler_source_scrape_duration_seconds")) == 1

    # Both shards' ScaleRole alerts reach the one Alertmanager, one alert per app in each
    # notification. (The scale route repeats a firing group every 10 s, and the shards'
    # 15 s policy groups may start apart, so an app may be notified again before the last
    # app's first notification: always with its one alert, one fingerprint.)
    def notified() -> dict[str, set[str]]:
        fingerprints: dict[str, set[str]] = {}
        for path, _, body in list(receiver.requests):
            if path == "/dynoscaler-scaler":
                assert len(body["alerts"]) == 1
                (alert,) = body["alerts"]
                fingerprints.setdefault(alert["labels"]["app"], set()).add(alert["fingerprint"])
        return fingerprints if set(fingerprints) == set(APPS) else {}

    fingerprints = wait_for(notified, timeout=30, interval=0.5)
    assert all(len(found) == 1 for found in fingerprints.values())


def query_any(url: str, expr: str) -> list[dict]:
    response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    return response.json()["data"]["result"]
