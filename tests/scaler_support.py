"""Shared helpers of the scaler tests: a settings file, payloads, free ports, processes."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import requests
import yaml

TOKEN = "test-token-0123456789"
FIXTURES = Path(__file__).parent / "fixtures"

SETTINGS: dict[str, Any] = {
    "defaults": {"min_dynos": 1, "max_dynos": 10, "cooldown": 60, "max_step": 3},
    "apps": {
        "shop": {
            "roles": {
                "worker": {
                    "concurrency": 4,
                    "queues": [{"name": "default", "backend": "rq", "url": "redis://x/5"}],
                },
                "web": {"min_dynos": 2, "max_dynos": 6, "requests": "router"},
            }
        },
        "dialer": {
            "roles": {
                "calls": {"queues": [{"name": "twilio", "backend": "resque", "url": "redis://x/5"}]}
            }
        },
    },
}


def write_settings(
    directory: Path, store: str, defaults: dict[str, Any] | None = None, **scaler: Any
) -> Path:
    """autoscale.yml with SETTINGS, `defaults` merged over its defaults, `scaler` settings."""
    document = {
        **SETTINGS,
        "defaults": {**SETTINGS["defaults"], **(defaults or {})},
        "scaler": {"store": store, **scaler},
    }
    path = directory / "autoscale.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def alert(
    app: str,
    role: str,
    desired: str,
    name: str = "ScaleRole",
    status: str = "firing",
    ends_at: str = "0001-01-01T00:00:00Z",
) -> dict[str, Any]:
    labels = {"alertname": name, "app": app, "role": role, "severity": "scale"}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"desired_dynos": desired},
        "startsAt": "2026-11-23T10:00:00.123456789Z",
        "endsAt": ends_at,
        "generatorURL": "http://prometheus/graph",
        "fingerprint": uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(labels)).hex[:16],
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{app="shop"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "scaler",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Wait until url answers at all (any status); fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"process exited with {process.returncode}: {out}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
