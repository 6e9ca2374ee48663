"""`scaler reconcile --once` against a real Prometheus scraping a metrics page; `decisions`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from scaler_support import HEROKU_KEY, FakeHerokuProcess, prometheus_scraping, write_settings
from support import metrics_page

from dynoscaler.processes import free_port

pytestmark = pytest.mark.timeout(90)


class MetricsPage:
    """The /metrics text the test rewrites."""

    def __init__(self) -> None:
        self.values = {"worker": 5.0, "web": 2.0, "rq_up": 1.0, "web_up": 1.0}

    def render(self) -> str:
        v = self.values
        return "".join(
            [
                f'app_role:dynoscaler_desired_dynos{{app="shop",role="worker"}} {v["worker"]}\n',
                f'app_role:dynoscaler_desired_dynos{{app="shop",role="web"}} {v["web"]}\n',
                'app_role:dynoscaler_desired_dynos{app="ghost",role="x"} 3\n',
                'dynoscaler_dynos{app="shop",role="worker"} 1\n',
                'dynoscaler_dynos{app="shop",role="web"} 2\n',
                'dynoscaler_source_up{source="127.0.0.1:6379",backend="rq",app="shop",'
                f'role="worker"}} {v["rq_up"]}\n',
                'dynoscaler_source_up{source="heroku",backend="heroku",app="shop",'
                f'role="web"}} {v["web_up"]}\n',
            ]
        )


@pytest.fixture
def prometheus(tmp_path) -> Iterator[tuple[str, MetricsPage]]:
    page = MetricsPage()
    server = metrics_page(page.render)
    try:
        with prometheus_scraping(tmp_path, server.port) as url:
            yield url, page
    finally:
        server.close()


def wait_for(url: str, promql: str, expected: float) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
        values = [float(s["value"][1]) for s in result["data"]["result"]]
        if values == [expected]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{promql} never became {expected}")


def dynoscaler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dynoscaler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or os.environ,
    )


def test_reconcile_decides_like_the_webhook(prometheus, tmp_path) -> None:
    url, page = prometheus
    settings = write_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 's.sqlite3'}",
        defaults={"cooldown": 0},
        dry_run=True,
        prometheus_url=url,
    )
    worker = 'app_role:dynoscaler_desired_dynos{role="worker"}'
    wait_for(url, worker, 5)
    first = dynoscaler("scaler", "reconcile", "--once", "--config", str(settings))
    assert first.returncode == 0, first.stderr
    assert sorted(first.stdout.splitlines()) == [
        "shop/web: already at 2 (none)",
        "shop/worker: dry run: scale 1 -> 4 (limited by max_step 3) (dry_run)",
    ]

    page.values.update(worker=2.0, rq_up=0.0)
    wait_for(url, 'dynoscaler_source_up{backend="rq"}', 0)
    wait_for(url, worker, 2)
    down = dynoscaler("scaler", "reconcile", "--once", "--config", str(settings))
    assert (
        "shop/worker: no scale-down: input data missing or of unknown age (none)"
        in down.stdout.splitlines()
    )

    # Only a source feeding web is down now: worker's own source is back, so it scales.
    page.values.update(rq_up=1.0, web_up=0.0)
    wait_for(url, 'dynoscaler_source_up{backend="rq"}', 1)
    wait_for(url, 'dynoscaler_source_up{backend="heroku"}', 0)
    fresh = dynoscaler("scaler", "reconcile", "--once", "--config", str(settings))
    assert "shop/worker: dry run: scale 4 -> 2 (dry_run)" in fresh.stdout.splitlines()

    table = dynoscaler("decisions", "--config", str(settings), "--role", "worker")
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "time", "source", "app", "role", "from_count", "to_count", "outcome", "reason"
    ]  # fmt: skip
    assert [line.split()[3:7] for line in lines[1:]] == [
        ["shop", "worker", "4", "2"],
        ["shop", "worker", "4", "-"],
        ["shop", "worker", "1", "4"],
    ]
    exported = dynoscaler("decisions", "--config", str(settings), "--csv", "--limit", "1")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 1
    assert rows[0]["source"] == "reconcile"
    assert '"sources_down": []' in rows[0]["inputs"]


def test_reconcile_once_without_prometheus_fails_cleanly(tmp_path) -> None:
    settings = write_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 's.sqlite3'}",
        dry_run=True,
        prometheus_url=f"http://127.0.0.1:{free_port()}",
    )
    result = dynoscaler("scaler", "reconcile", "--once", "--config", str(settings))
    assert result.returncode == 1
    assert "reconcile skipped: http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_reconcile_acts_on_heroku_and_reports_failure(prometheus, tmp_path) -> None:
    url, _ = prometheus
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 's.sqlite3'}", prometheus_url=url)
    fake = FakeHerokuProcess(settings)
    env = {**os.environ, "HEROKU_API_URL": fake.url, "HEROKU_API_KEY": HEROKU_KEY}
    try:
        wait_for(url, 'app_role:dynoscaler_desired_dynos{role="worker"}', 5)
        fake.admin("POST", "faults", {"status": 503, "count": 4, "method": "PATCH"})
        failed = dynoscaler("scaler", "reconcile", "--once", "--config", str(settings), env=env)
        assert failed.returncode == 1
        assert "shop/worker: scale 1 -> 4 (limited by max_step 3) (failure)" in failed.stdout
        assert fake.quantity("shop", "worker") == 1
        done = dynoscaler("scaler", "reconcile", "--once", "--config", str(settings), env=env)
        assert done.returncode == 0, done.stderr
        assert "shop/worker: scale 1 -> 4 (limited by max_step 3) (success)" in done.stdout
        assert fake.quantity("shop", "worker") == 4
    finally:
        fake.close()
