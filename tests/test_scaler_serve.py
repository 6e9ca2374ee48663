"""`dynoscaler scaler serve`: gunicorn as a real process with 2 workers (dry run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from scaler_support import TOKEN, alert, dry_run_scaler, payload, write_settings

pytestmark = pytest.mark.timeout(90)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    with dry_run_scaler(tmp_path) as url:
        yield url


def test_gunicorn_serves_and_metrics_add_up_over_workers(server) -> None:
    body = payload(alert("shop", "worker", "3"))
    outcomes = [
        requests.post(f"{server}/alerts", json=body, headers=AUTH, timeout=10).json()["decisions"][
            0
        ]["outcome"]
        for _ in range(20)
    ]
    # One action over 20 deliveries, whichever worker took each one.
    assert outcomes.count("dry_run") == 1
    assert outcomes.count("none") == 19
    assert requests.get(f"{server}/healthz", timeout=10).json() == {
        "store": "ok",
        "heroku": "dry run",
    }
    text = requests.get(f"{server}/metrics", timeout=10).text
    counted = re.search(
        r'dynoscaler_scaler_requests_total\{endpoint="alerts",status="200"\} (\S+)', text
    )
    assert counted and float(counted.group(1)) == 20.0
    rows = requests.get(f"{server}/decisions?limit=1000", headers=AUTH, timeout=10).json()
    assert len(rows["decisions"]) == 20


def test_serve_refuses_without_token(tmp_path) -> None:
    path = write_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}")
    env = {k: v for k, v in os.environ.items() if k != "DYNOSCALER_WEBHOOK_TOKEN"}
    command = [sys.executable, "-m", "dynoscaler", "scaler", "serve", "--config", str(path)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "DYNOSCALER_WEBHOOK_TOKEN is not set" in out


def test_serve_refuses_no_threads(tmp_path) -> None:
    path = write_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}")
    env = {**os.environ, "DYNOSCALER_WEBHOOK_TOKEN": TOKEN}
    command = [sys.executable, "-m", "dynoscaler", "scaler", "serve", "--config", str(path)]
    result = subprocess.run(
        [*command, "--threads", "0"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "--threads must be at least 1" in result.stderr
