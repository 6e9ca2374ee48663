"""High availability with real processes: two Alertmanagers, two scalers, one PostgreSQL store.

Two `prometheus-alertmanager` clustered over loopback gossip (`--cluster.listen-address`,
`--cluster.peer`), each with alertmanager/alertmanager.yml's routes and its scale
receiver sending to both scalers (two webhook_configs: either scaler may be down);
two `dynoscaler scaler serve` (gunicorn) on one PostgreSQL database; the fake
Heroku. Alerts are posted to both Alertmanagers, as Prometheus sends every alert
to each Alertmanager of an HA pair. docs/scaling.md describes the topology.

- A burst of duplicate ScaleRole alerts through both gives one PATCH per change.
- kill -9 of the Alertmanager that notifies first and of one scaler, then a new
  desired count: the scale-up lands through the survivors, and every PATCH the
  fake Heroku saw is a success decision in the store.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from exporter_helpers import wait_for
from rules_support import ROOT
from scaler_support import (
    HEROKU_KEY,
    TOKEN,
    FakeHerokuProcess,
    ScalerProcess,
    postgres_database,
    write_settings,
)

from dynoscaler.processes import free_port, stop, wait_until_answering

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
# The default 15s is how long the second Alertmanager waits for the first's
# notification log before it sends itself; cut so a failover shows within the test.
PEER_TIMEOUT = "2s"


class AlertmanagerPeer:
    """One clustered Alertmanager: its API URL, its gossip address, its process."""

    def __init__(self, directory: Path, gossip: int, peer: int, scalers: list[str]) -> None:
        directory.mkdir()
        config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text("utf-8"))
        [scale] = [r for r in config["receivers"] if r["name"] == "dynoscaler-scaler"]
        webhook = scale["webhook_configs"][0]
        scale["webhook_configs"] = [
            {**copy.deepcopy(webhook), "url": f"{u}/alerts"} for u in scalers
        ]
        [people] = [r for r in config["receivers"] if r["name"] == "people"]
        people["webhook_configs"][0]["url"] = f"http://127.0.0.1:{free_port()}/people"
        (directory / "webhook-token").write_text(TOKEN, encoding="utf-8")
        (directory / "alertmanager.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gossip = f"127.0.0.1:{gossip}"
        self.process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={directory / 'alertmanager.yml'}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--cluster.listen-address={self.gossip}",
                f"--cluster.peer=127.0.0.1:{peer}",
                f"--cluster.peer-timeout={PEER_TIMEOUT}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def status(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/api/v2/status", timeout=5).json()

    def post(self, alerts: list[dict[str, Any]]) -> bool:
        try:
            return requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5).ok
        except requests.ConnectionError:
            return False  # a killed peer: Prometheus' send to it fails the same way


def scale_alert(app: str, role: str, desired: int) -> dict[str, Any]:
    """ScaleRole as Prometheus posts it to Alertmanager's API (labels from alerts.yml)."""
    labels = {"alertname": "ScaleRole", "severity": "scale", "direction": "up"}
    return {
        "labels": {**labels, "app": app, "role": role},
        "annotations": {"desired_dynos": str(desired)},
    }


def kill_9(process: subprocess.Popen) -> None:
    """SIGKILL a process and its children (a gunicorn master and its workers)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    for pid in [process.pid, *map(int, children)]:
        os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def cluster(
    tmp_path: Path,
) -> Iterator[tuple[FakeHerokuProcess, list[ScalerProcess], list[AlertmanagerPeer]]]:
    with postgres_database("dynoscaler_ha") as store:
        settings = write_settings(tmp_path, store)
        fake = FakeHerokuProcess(settings)
        scalers: list[ScalerProcess] = []
        peers: list[AlertmanagerPeer] = []
        try:
            metrics = [tmp_path / "metrics-a", tmp_path / "metrics-b"]
            for directory in metrics:
                directory.mkdir()
                env = {
                    **os.environ,
                    "DYNOSCALER_WEBHOOK_TOKEN": TOKEN,
                    "HEROKU_API_URL": fake.url,
                    "HEROKU_API_KEY": HEROKU_KEY,
                    "PROMETHEUS_MULTIPROC_DIR": str(directory),
                }
                scalers.append(ScalerProcess(settings, env))
            urls = [s.url for s in scalers]
            gossip = [free_port(), free_port()]
            peers = [
                AlertmanagerPeer(tmp_path / "am-a", gossip[0], gossip[1], urls),
                AlertmanagerPeer(tmp_path / "am-b", gossip[1], gossip[0], urls),
            ]
            for peer in peers:
                wait_until_answering(f"{peer.url}/-/ready", peer.process, ok_only=True)
            # Both see both: the pair is a cluster, not two lone Alertmanagers.
            wait_for(
                lambda: all(len(p.status()["cluster"]["peers"]) == 2 for p in peers),
                timeout=20,
            )
            yield fake, scalers, peers
        finally:
            for peer in peers:
                stop(peer.process)
            for scaler in scalers:
                scaler.close()
            fake.close()


def decisions(scaler: ScalerProcess, app: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = requests.get(
        f"{scaler.url}/decisions", params={"app": app, "limit": 1000}, headers=headers, timeout=10
    )
    response.raise_for_status()
    return response.json()["decisions"]


def patched(fake: FakeHerokuProcess) -> list[tuple[str, str, int]]:
    """(app, role, quantity) of every PATCH the fake Heroku received, in order."""
    names = {a["id"]: a["name"] for a in fake.admin("GET", "state")["apps"]}
    found = []
    for request in fake.patches():
        app = request["path"].split("/")[2]  # /apps/{id or name}/formation
        updates = request["body"]["updates"]
        found += [(names.get(app, app), u["type"], u["quantity"]) for u in updates]
    return found


def test_duplicates_through_both_act_once_and_a_killed_pair_loses_nothing(cluster) -> None:
    fake, scalers, peers = cluster
    burst = [scale_alert("shop", "worker", 4), scale_alert("dialer", "calls", 3)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        sent = list(pool.map(lambda i: peers[i % 2].post(burst), range(20)))
    assert all(sent)
    wait_for(
        lambda: (fake.quantity("shop", "worker"), fake.quantity("dialer", "calls")) == (4, 3),
        timeout=20,
    )
    # Both Alertmanagers' repeats (repeat_interval 10s) and the second peer's
    # send after the peer timeout reach both scalers; none of them patches again.
    wait_for(lambda: len(decisions(scalers[0], "shop")) >= 3, timeout=25)
    assert sorted(patched(fake)) == [("dialer", "calls", 3), ("shop", "worker", 4)]
    assert len(fake.patches()) == 2

    # The Alertmanager first in the cluster's order notifies at once, the other
    # only after the peer timeout: kill the first, and one scaler, with SIGKILL.
    names = sorted(p["name"] for p in peers[0].status()["cluster"]["peers"])
    first = next(p for p in peers if p.status()["cluster"]["name"] == names[0])
    survivor = next(p for p in peers if p is not first)
    kill_9(first.process)
    kill_9(scalers[0].process)
    changed = [scale_alert("shop", "worker", 7), scale_alert("dialer", "calls", 3)]
    for peer in peers:
        peer.post(changed)  # the dead peer refuses the connection
    started = time.monotonic()
    wait_for(lambda: fake.quantity("shop", "worker") == 7, timeout=40, interval=0.5)
    print(f"scale-up after the kills landed in {time.monotonic() - started:.1f}s")
    assert survivor.process.poll() is None

    assert sorted(patched(fake)) == [
        ("dialer", "calls", 3),
        ("shop", "worker", 4),
        ("shop", "worker", 7),
    ]
    stored = decisions(scalers[1], "shop") + decisions(scalers[1], "dialer")
    successes = sorted(
        (d["app"], d["role"], d["to_count"]) for d in stored if d["outcome"] == "success"
    )
    assert successes == sorted(patched(fake))
    worker = [(d["from_count"], d["to_count"]) for d in stored if d["outcome"] == "success"]
    assert (4, 7) in worker and (1, 4) in worker
