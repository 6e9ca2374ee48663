"""Shared helpers of the scaler tests: a settings file, payloads, the fake Heroku, the scaler."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import requests
import yaml

from dynoscaler.processes import (
    NotServing,
    free_port,
    start_announced,
    stop,
    wait_until_answering,
)

TOKEN = "test-token-0123456789"
FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

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


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database named `prefix` + a random suffix; dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def alert(
    app: str,
    role: str,
    desired: str,
    name: str = "ScaleRole",
    status: str = "firing",
    ends_at: str = "0001-01-01T00:00:00Z",
    direction: str = "up",
) -> dict[str, Any]:
    """An alert as Alertmanager's webhook sends it; `ends_at` "0001-...Z" is its firing form."""
    labels = {"alertname": name, "app": app, "role": role, "severity": "scale"}
    labels["direction"] = direction
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


HEROKU_KEY = "fake-heroku-key"


class FakeHerokuProcess:
    """`dynoscaler fake-heroku` as a subprocess on a free port, with its admin API."""

    def __init__(self, settings_path: Path, *extra: str) -> None:
        command = [sys.executable, "-m", "dynoscaler", "fake-heroku"]
        command += ["--config", str(settings_path), "--port", "0", "--api-key", HEROKU_KEY]
        self.process, self.url = start_announced(
            [*command, *extra], "fake-heroku: serving", stderr=subprocess.STDOUT
        )

    def admin(self, method: str, what: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.url}/__fake__/{what}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def quantity(self, app: str, role: str) -> int:
        apps = {a["name"]: a for a in self.admin("GET", "state")["apps"]}
        return next(f["quantity"] for f in apps[app]["formation"] if f["type"] == role)

    def patches(self) -> list[dict[str, Any]]:
        return [r for r in self.admin("GET", "requests") if r["method"] == "PATCH"]

    def close(self) -> None:
        stop(self.process)


class ScalerProcess:
    """`dynoscaler scaler serve` (gunicorn) as a subprocess on a free port."""

    def __init__(self, settings_path: Path, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "dynoscaler", "scaler", "serve", "--config"]
        command += [str(settings_path), "--port", str(self.port), "--workers", str(workers)]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_until_answering(f"{self.url}/healthz", self.process)
        except NotServing:
            self.close()
            raise

    def post(self, body: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return requests.post(f"{self.url}/alerts", json=body, headers=headers, timeout=30)

    def close(self) -> None:
        stop(self.process)
