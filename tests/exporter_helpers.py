"""Shared by the exporter tests: their Redis database, the real exporter process, scraping."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dynoscaler import heroku_budget
from dynoscaler.processes import NotServing, start_announced, stop

ROOT = Path(__file__).resolve().parent.parent
REDIS_DB1 = "redis://127.0.0.1:6379/1"  # the exporter tests' database
RABBITMQ_API = "http://guest:guest@127.0.0.1:15672/%2F"
DRAIN_TOKEN = "drain-secret"  # every exporter() started here takes the log drain with it
DRAIN_AUTH = ("heroku", DRAIN_TOKEN)  # basic auth, as a drain URL https://heroku:secret@... sends
HEROKU_ACCEPT = {"Accept": "application/vnd.heroku+json; version=3"}

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def fresh_budget_view(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's view of Heroku's bucket starts fresh: another test's 429 (its
    Retry-After) would pause a formation poller, whose start then reads one app only."""
    for name, fresh in (("remaining", None), ("at", 0.0), ("retry_until", 0.0)):
        monkeypatch.setattr(heroku_budget.OBSERVED, name, fresh)


def write_config(
    directory: Path, apps: dict[str, Any], heroku: dict[str, Any] | None = None, **exporter: float
) -> Path:
    path = directory / "autoscale.yml"
    document: dict[str, Any] = {"apps": apps}
    if heroku:
        document["heroku"] = heroku
    if exporter:
        document["exporter"] = exporter
    path.write_text(yaml.safe_dump(document))
    return path


def flushed_redis(url: str) -> Iterator[redis.Redis]:
    """A client of the Redis database at `url`, emptied before and after (a fixture's body)."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(name="db1")
def redis_db1() -> Iterator[redis.Redis]:
    """The db1 fixture: the exporter tests' Redis database, empty before and after the test.

    A test module imports it to use it (there is no conftest.py).
    """
    yield from flushed_redis(REDIS_DB1)


@pytest.fixture(name="hung_server")
def hung_tcp_port() -> Iterator[int]:
    """The hung_server fixture: a TCP port that accepts connections (kernel backlog) but
    never answers. A test module imports it to use it, as db1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class RunningExporter:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def scrape(self) -> Series:
        response = requests.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return parse(response.text)

    def log_lines(self, text: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if text in line]


def parse(text: str) -> Series:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@contextlib.contextmanager
def exporter(config: Path, env: dict[str, str] | None = None) -> Iterator[RunningExporter]:
    """The real `dynoscaler exporter` in a subprocess on a free port; always stopped."""
    log = config.parent / "exporter.log"
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DYNOSCALER_DRAIN_TOKEN": DRAIN_TOKEN,
        **(env or {}),
    }
    if env is None or "HEROKU_API_KEY" not in env:
        environment.pop("HEROKU_API_KEY", None)
    command = [sys.executable, "-m", "dynoscaler", "exporter", "--config", str(config)]
    command += ["--port", "0", "--bind", "127.0.0.1"]
    with open(log, "w") as stderr:
        try:
            # its first line: "... listening on http://127.0.0.1:PORT/metrics"
            process, url = start_announced(command, "listening on", stderr=stderr, env=environment)
        except NotServing as error:
            raise AssertionError(f"{error}\n{log.read_text()}") from None
    try:
        yield RunningExporter(process, url.removesuffix("/metrics"), log)
    finally:
        stop(process)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Call `check` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"condition not met within {timeout}s"
            return result
        time.sleep(interval)


def scale_by_hand(url: str, key: str, app: str, role: str, quantity: int) -> None:
    """A PATCH of the formation on the (fake) Heroku at `url`, as `heroku ps:scale` sends it."""
    patched = requests.patch(
        f"{url}/apps/{app}/formation",
        json={"updates": [{"type": role, "quantity": quantity}]},
        auth=("", key),
        headers=HEROKU_ACCEPT,
        timeout=5,
    )
    assert patched.status_code == 200


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def queue(app: str, role: str, name: str, backend: str) -> frozenset[tuple[str, str]]:
    return labels(app=app, role=role, queue=name, backend=backend)


def worker_queues(directory: Path, backend: str, *names: str) -> Path:
    """autoscale.yml with shop/worker's queues `names`, all on `backend` in db1."""
    queues = [{"name": name, "backend": backend, "url": REDIS_DB1} for name in names]
    return write_config(directory, {"shop": {"roles": {"worker": {"queues": queues}}}})


def queue_figures(series: Series, name: str, backend: str) -> dict[str, float | None]:
    """shop/worker's queue `name` on `backend` in `series`: depth, in_progress and
    oldest_age_seconds, None where there is no series."""
    found = queue("shop", "worker", name, backend)
    return {
        metric: series.get((f"dynoscaler_queue_{metric}", found))
        for metric in ("depth", "in_progress", "oldest_age_seconds")
    }


def source_ups(series: Series) -> dict[tuple[str, str, str, str], float]:
    """Every dynoscaler_source_up series as {(source, backend, app, role): value}."""
    keys = ("source", "backend", "app", "role")
    return {
        tuple(dict(found)[key] for key in keys): value
        for (name, found), value in series.items()
        if name == "dynoscaler_source_up"
    }
