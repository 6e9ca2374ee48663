"""Shared helpers of the scaler tests: a settings file, payloads, the fake Heroku, the scaler."""

from __future__ import annotations

import contextlib
import json
import os
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
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
ALERTMANAGER_YML = Path(__file__).resolve().parent.parent / "alertmanager" / "alertmanager.yml"

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


@contextlib.contextmanager
def prometheus_scraping(directory: Path, port: int) -> Iterator[str]:
    """The URL of a real Prometheus scraping 127.0.0.1:`port` every second."""
    (directory / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: page\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    listen = free_port()
    process = subprocess.Popen(
        [
            "/usr/bin/prometheus",
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{listen}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{listen}"
    try:
        wait_until_answering(f"{url}/-/ready", process)
        yield url
    finally:
        stop(process)


def scaler_environment(fake: FakeHerokuProcess, directory: Path) -> dict[str, str]:
    """The scaler's environment: this one, the webhook token, `fake` as Heroku, and a new
    PROMETHEUS_MULTIPROC_DIR below `directory`."""
    metrics_dir = directory / f"metrics-{uuid.uuid4().hex[:6]}"
    metrics_dir.mkdir()
    return {
        **os.environ,
        "DYNOSCALER_WEBHOOK_TOKEN": TOKEN,
        "HEROKU_API_URL": fake.url,
        "HEROKU_API_KEY": HEROKU_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


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


@contextlib.contextmanager
def dry_run_scaler(directory: Path) -> Iterator[str]:
    """`dynoscaler scaler serve` in dry run on SETTINGS, with a SQLite store and its metrics
    in `directory`; yields its URL, stopped after."""
    path = write_settings(directory, f"sqlite:///{directory / 's.sqlite3'}", dry_run=True)
    env = {
        **os.environ,
        "DYNOSCALER_WEBHOOK_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    server = ScalerProcess(path, env)
    try:
        yield server.url
    finally:
        server.close()


@contextlib.contextmanager
def alertmanager(
    directory: Path,
    scaler_url: str,
    people_url: str,
    token: str = TOKEN,
    group_wait: str | None = None,
    stderr: int = subprocess.PIPE,
) -> Iterator[str]:
    """alertmanager/alertmanager.yml in a real Alertmanager on a free port; yields its URL.

    Its receivers post to `scaler_url` (dynoscaler-scaler) and `people_url` (people) with
    `token` (written to `directory`/webhook-token); `group_wait`, if given, replaces the
    root route's. Everything else is the file's own.
    """
    settings = yaml.safe_load(ALERTMANAGER_YML.read_text("utf-8"))
    if group_wait is not None:
        settings["route"]["group_wait"] = group_wait
    receivers = {r["name"]: r["webhook_configs"][0] for r in settings["receivers"]}
    receivers["dynoscaler-scaler"]["url"] = scaler_url
    receivers["people"]["url"] = people_url
    (directory / "webhook-token").write_text(token, encoding="utf-8")
    (directory / "alertmanager.yml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/-/ready", process, ok_only=True)
        yield url
    finally:
        stop(process)
